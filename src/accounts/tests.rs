//! The roster's decisions, on made-up wall-clock times: which account takes
//! work, what a limit or a failed login does, what a reload changes.

use std::time::{Duration, SystemTime};

use super::signal::Signal;
use super::{AccountKey, Roster};
use crate::config::{AccountPlan, Settings};
use crate::error::JobError;

fn plans(toml: &str) -> Vec<AccountPlan> {
    Settings::from_toml(toml).expect("settings").account_plans()
}

const TWO: &str =
    "[[accounts]]\nname = \"a\"\nworkers = 1\n[[accounts]]\nname = \"b\"\nworkers = 2\n";

/// A roster of `toml`'s accounts, and their keys by name.
fn roster(toml: &str) -> (Roster, impl Fn(&Roster, &str) -> AccountKey) {
    let mut roster = Roster::default();
    roster.apply_plans(plans(toml));
    let key = |r: &Roster, name: &str| {
        r.live()
            .find(|a| a.plan.name == name)
            .map(|a| a.key)
            .expect("account")
    };
    (roster, key)
}

fn names(roster: &Roster, keys: &[AccountKey]) -> Vec<String> {
    keys.iter()
        .map(|k| roster.get(*k).unwrap().plan.name.clone())
        .collect()
}

#[test]
fn new_work_goes_to_the_least_recently_used_account() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let (mut r, key) = roster(TWO);
    let first = r.usable(t0)[0];
    r.note_assigned(first);
    let usable = r.usable(t0);
    assert_eq!(usable.len(), 2);
    assert_ne!(usable[0], first, "the other account goes first now");
    r.note_assigned(usable[0]);
    assert_eq!(r.usable(t0)[0], first);
    assert_eq!(
        r.get(key(&r, "a")).unwrap().jobs + r.get(key(&r, "b")).unwrap().jobs,
        2
    );
}

#[test]
fn a_limited_account_takes_no_work_until_its_limit_ends() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let (mut r, key) = roster(TWO);
    let (a, b) = (key(&r, "a"), key(&r, "b"));
    let limited = Signal::Limited {
        retry_after: Some(Duration::from_secs(30)),
    };
    r.note_limit(a, &limited, t0, "worker-1");
    assert_eq!(r.usable(t0), [b]);
    assert!(r.all_limited(t0).is_none(), "b still takes work");
    r.note_limit(b, &limited, t0 + Duration::from_secs(10), "worker-2");
    // Both limited: refused with the time until the sooner limit ends.
    match r.all_limited(t0 + Duration::from_secs(10)) {
        Some(JobError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(20))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.usable(t0 + Duration::from_secs(31)), [a]);
    assert_eq!(r.get(a).unwrap().rate_limited, 1);
    let health = r.health(t0 + Duration::from_secs(31), |_| 1, &plans(TWO));
    let status: Vec<(&str, &str)> = health.iter().map(|h| (h.name.as_str(), h.status)).collect();
    assert_eq!(status, [("a", "ok"), ("b", "limited")]);
}

#[test]
fn an_account_whose_login_failed_takes_work_only_when_no_other_can() {
    let t0 = SystemTime::UNIX_EPOCH;
    let (mut r, key) = roster(TWO);
    let (a, b) = (key(&r, "a"), key(&r, "b"));
    r.note_login(a, Some("not logged in; run claude login".into()));
    assert_eq!(r.usable(t0), [b]);
    assert!(r.a_login_works(t0));
    assert!(r.login_failure().is_none(), "b's login works");
    r.note_login(b, Some("invalid API key".into()));
    assert_eq!(r.usable(t0).len(), 2, "no login works: both, for the error");
    assert!(!r.a_login_works(t0));
    let why = r.login_failure().unwrap();
    assert!(
        why.contains("account a: not logged in") && why.contains("account b: invalid API key"),
        "{why}"
    );
    // A job that succeeds on a shows its login works again.
    r.note_login(a, None);
    assert_eq!(r.usable(t0), [a]);
    // A reload tries every login again.
    r.apply_plans(plans(TWO));
    assert_eq!(r.usable(t0).len(), 2);
}

#[test]
fn a_reload_adds_resizes_redefines_and_removes_accounts() {
    let (mut r, key) = roster(TWO);
    let (a, b) = (key(&r, "a"), key(&r, "b"));
    let dirs = r.apply_plans(plans(
        "[[accounts]]\nname = \"b\"\nworkers = 3\n\
         [[accounts]]\nname = \"c\"\nworkers = 1\nconfig_dir = \"/srv/c\"\n",
    ));
    assert_eq!(
        dirs,
        [std::path::PathBuf::from("/srv/c")],
        "c's login directory"
    );
    assert!(r.get(a).unwrap().removed && r.get(a).unwrap().target() == 0);
    assert_eq!(r.get(b).unwrap().target(), 3, "resized, same account");
    let c = key(&r, "c");
    assert!(c != a && c != b);
    // b redefined with other credentials: a new account of the same name.
    r.apply_plans(plans(
        "[[accounts]]\nname = \"b\"\nworkers = 3\n[accounts.env]\nANTHROPIC_API_KEY = \"sk-2\"\n",
    ));
    let new_b = key(&r, "b");
    assert_ne!(new_b, b);
    assert!(r.get(b).unwrap().removed);
    assert_eq!(names(&r, &r.usable(SystemTime::UNIX_EPOCH)), ["b"]);
    // Removed accounts are forgotten once their workers are gone.
    r.forget_empty(|k| k == b);
    assert!(r.get(a).is_none() && r.get(c).is_none());
    assert!(r.get(b).is_some(), "its worker is still there");
    r.forget_empty(|_| false);
    assert_eq!(r.iter().map(|a| a.key).collect::<Vec<_>>(), [new_b]);
}
