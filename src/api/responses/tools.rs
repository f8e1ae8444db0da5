//! The Responses API's tools as caller tools: `function` tools as they are,
//! each function of a `namespace` group under `<namespace>__<name>`, and
//! `custom` (free-form) tools as a tool taking one string `input`. Hosted
//! tools (web search, file search, …) cannot run in the pool and are
//! dropped. [`ToolNames`] maps the model's calls back to the caller's names.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::api::tools::{Choice, ToolDef};
use crate::api::InvalidRequest;

/// Separates a namespace from a function's name in the name the model sees.
const NAMESPACE_SEPARATOR: &str = "__";

/// A tool as the caller named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerTool {
    pub namespace: Option<String>,
    pub name: String,
    /// A `custom` tool: the model's one string argument is the call's input.
    pub custom: bool,
}

/// The caller's tool names by the names the model sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolNames(HashMap<String, CallerTool>);

impl ToolNames {
    /// The caller's tool behind a name the model called.
    pub fn caller(&self, model_name: &str) -> CallerTool {
        self.0.get(model_name).cloned().unwrap_or(CallerTool {
            namespace: None,
            name: model_name.to_string(),
            custom: false,
        })
    }

    /// The name the model sees for a caller's (namespaced) tool.
    pub fn model_name(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
            None => name.to_string(),
        }
    }
}

/// The tool definitions the model is offered, and their names.
pub fn tool_defs(tools: &[Value]) -> Result<(Vec<ToolDef>, ToolNames), InvalidRequest> {
    let mut defs = Vec::new();
    let mut names = ToolNames::default();
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "function" | "custom" => add(&mut defs, &mut names, None, tool, &at)?,
            "namespace" => {
                let ns = name_of(tool, &at)?;
                for (j, inner) in tool["tools"].as_array().into_iter().flatten().enumerate() {
                    add(
                        &mut defs,
                        &mut names,
                        Some(ns),
                        inner,
                        &format!("{at}.tools[{j}]"),
                    )?;
                }
            }
            _ => {
                log::debug!("responses: hosted tool `{kind}` dropped: the pool cannot run it");
            }
        }
    }
    Ok((defs, names))
}

fn name_of<'a>(tool: &'a Value, at: &str) -> Result<&'a str, InvalidRequest> {
    tool.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| InvalidRequest(format!("{at}.name: a tool needs a non-empty name")))
}

fn add(
    defs: &mut Vec<ToolDef>,
    names: &mut ToolNames,
    namespace: Option<&str>,
    tool: &Value,
    at: &str,
) -> Result<(), InvalidRequest> {
    let name = name_of(tool, at)?;
    let custom = tool["type"] == "custom";
    let description = tool["description"].as_str().unwrap_or_default();
    let model_name = names.model_name(namespace, name);
    let (description, input_schema) = if custom {
        custom_tool(description, &tool["format"])
    } else {
        (description.to_string(), tool["parameters"].clone())
    };
    names.0.insert(
        model_name.clone(),
        CallerTool {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            custom,
        },
    );
    defs.push(ToolDef {
        name: model_name,
        description,
        input_schema,
    });
    Ok(())
}

/// A free-form tool as a tool with one string argument `input`; a grammar
/// the input must follow is described to the model (not enforced).
fn custom_tool(description: &str, format: &Value) -> (String, Value) {
    let mut input = String::from("The tool's whole input, as free-form text.");
    if format["type"] == "grammar" {
        let syntax = format["syntax"].as_str().unwrap_or("grammar");
        let definition = format["definition"].as_str().unwrap_or_default();
        input.push_str(&format!(
            " It must follow this {syntax} grammar:\n{definition}"
        ));
    }
    let schema = json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": input}},
        "required": ["input"],
    });
    (description.to_string(), schema)
}

/// `tool_choice`: `auto`, `none`, `required`, or a named function or
/// custom tool (`allowed_tools` and hosted choices count as `auto`).
pub fn choice(value: Option<&Value>, names: &ToolNames) -> Choice {
    match value {
        Some(Value::String(s)) if s == "none" => Choice::None,
        Some(Value::String(s)) if s == "required" => Choice::Any,
        Some(Value::Object(o))
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("function" | "custom")
            ) =>
        {
            match o.get("name").and_then(Value::as_str) {
                Some(name) => {
                    Choice::Tool(names.model_name(o.get("namespace").and_then(Value::as_str), name))
                }
                None => Choice::Auto,
            }
        }
        _ => Choice::Auto,
    }
}
