//! New secrets for keys made through the admin API: 256 random bits from
//! the operating system, hex, behind a prefix that says what they are (so
//! secret scanners and people recognise a leaked one).

/// What every secret the admin API makes starts with.
pub const PREFIX: &str = "cpk_";

/// How much of a secret is shown again (in lists): the prefix and 8 hex
/// digits, 32 of its 256 bits.
const SHOWN: usize = PREFIX.len() + 8;

/// A fresh secret: `cpk_` and 64 hex digits.
pub fn generate() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{PREFIX}{hex}"))
}

/// The part of `secret` that may be shown again to tell keys apart.
pub fn shown_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert!(a[PREFIX.len()..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(shown_prefix(&a), a[..12]);
    }
}
