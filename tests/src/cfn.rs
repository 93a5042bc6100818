//! Just enough of CloudFormation to check `template.yaml` offline: the intrinsic functions the
//! template uses (`Ref`, `Fn::Sub`, `Fn::Join`, `Fn::Split`, `Fn::If`, `Fn::GetAtt`, and the
//! condition functions), evaluated for a given set of parameters, account and region.
//! Resources evaluate to stand-ins: `Ref X` to `X`, `GetAtt X.Attr` to `X.Attr`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use serde_norway::Value as Yaml;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// `template.yaml`, as text.
pub fn template_text() -> String {
    std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml is readable")
}

/// The value `AWS::NoValue` evaluates to; maps drop keys that hold it.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

/// A template evaluated for one deployment.
#[derive(Debug)]
pub struct Stack {
    pub template: Yaml,
    pub parameters: BTreeMap<String, Value>,
    pub conditions: BTreeMap<String, bool>,
    pub account: String,
    pub region: String,
    pub stack_name: String,
}

fn tag_name(tag: &serde_norway::value::Tag) -> String {
    tag.to_string().trim_start_matches('!').to_owned()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{other} cannot be substituted into a string"),
    }
}

impl Stack {
    /// The template with its parameters' defaults, `overrides` laid over them.
    pub fn new(template: Yaml, overrides: &[(&str, &str)], account: &str, region: &str) -> Self {
        let mut parameters = BTreeMap::new();
        let declared = template["Parameters"]
            .as_mapping()
            .expect("the template has parameters")
            .clone();
        for (name, declaration) in &declared {
            let name = name
                .as_str()
                .expect("parameter names are strings")
                .to_owned();
            let given = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned());
            let default = match &declaration["Default"] {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Number(n) => Some(n.to_string()),
                Yaml::Null => None,
                other => panic!("parameter {name}: unexpected default {other:?}"),
            };
            let raw = given
                .or(default)
                .unwrap_or_else(|| panic!("parameter {name} has no default and no value"));
            let value = match declaration["Type"].as_str() {
                Some("CommaDelimitedList") => {
                    Value::Array(raw.split(',').map(|s| json!(s.trim())).collect())
                }
                _ => Value::String(raw),
            };
            parameters.insert(name, value);
        }
        for (name, _) in overrides {
            assert!(
                parameters.contains_key(*name),
                "no parameter {name} to override"
            );
        }
        let mut stack = Self {
            template,
            parameters,
            conditions: BTreeMap::new(),
            account: account.to_owned(),
            region: region.to_owned(),
            stack_name: "teststack".to_owned(),
        };
        let declared = stack.template["Conditions"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        for (name, condition) in &declared {
            let value = stack.condition(condition);
            stack
                .conditions
                .insert(name.as_str().unwrap_or_default().to_owned(), value);
        }
        stack
    }

    pub fn namespace(&self) -> String {
        format!("batchguard/{}", self.stack_name)
    }

    /// A resource's definition.
    pub fn resource(&self, logical_id: &str) -> &Yaml {
        let resource = &self.template["Resources"][logical_id];
        assert!(!resource.is_null(), "no resource {logical_id}");
        resource
    }

    /// Logical ids of the resources of a type.
    pub fn resources_of(&self, kind: &str) -> Vec<String> {
        self.template["Resources"]
            .as_mapping()
            .expect("the template has resources")
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .map(|(id, _)| id.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn condition(&self, node: &Yaml) -> bool {
        let Yaml::Tagged(tagged) = node else {
            panic!("a condition must be a condition function: {node:?}");
        };
        let args = &tagged.value;
        match tag_name(&tagged.tag).as_str() {
            "Equals" => {
                let a = self.eval(&args[0]);
                let b = self.eval(&args[1]);
                text(&a) == text(&b)
            }
            "Not" => !self.condition(&args[0]),
            "And" => args
                .as_sequence()
                .into_iter()
                .flatten()
                .all(|c| self.condition(c)),
            "Or" => args
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|c| self.condition(c)),
            "Condition" => self.conditions[args.as_str().unwrap_or_default()],
            other => panic!("condition function {other} is not supported here"),
        }
    }

    fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::Region" => json!(self.region),
            "AWS::AccountId" => json!(self.account),
            "AWS::Partition" => json!("aws"),
            "AWS::StackName" => json!(self.stack_name),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            "AWS::NoValue" => json!(NO_VALUE),
            _ => match self.parameters.get(name) {
                Some(value) => value.clone(),
                None => {
                    self.resource(name);
                    json!(name)
                }
            },
        }
    }

    fn sub(&self, template: &str, variables: &BTreeMap<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').expect("an unclosed ${ in Fn::Sub");
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&text(value));
            } else if let Some((resource, attribute)) = name.split_once('.') {
                self.resource(resource);
                out.push_str(&format!("{resource}.{attribute}"));
            } else {
                out.push_str(&text(&self.reference(name)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Evaluates a node to JSON.
    pub fn eval(&self, node: &Yaml) -> Value {
        match node {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => serde_json::to_value(n).expect("a YAML number is a JSON number"),
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.eval(item))
                    .filter(|v| v != &json!(NO_VALUE))
                    .collect(),
            ),
            Yaml::Mapping(map) => {
                if map.len() == 1 {
                    let (key, value) = map.iter().next().expect("one entry");
                    if let Some(function) = key
                        .as_str()
                        .and_then(|k| k.strip_prefix("Fn::").or((k == "Ref").then_some(k)))
                    {
                        return self.function(function, value);
                    }
                }
                let mut out = Map::new();
                for (key, value) in map {
                    let value = self.eval(value);
                    if value != json!(NO_VALUE) {
                        out.insert(key.as_str().expect("string keys").to_owned(), value);
                    }
                }
                Value::Object(out)
            }
            Yaml::Tagged(tagged) => self.function(&tag_name(&tagged.tag), &tagged.value),
        }
    }

    fn function(&self, name: &str, args: &Yaml) -> Value {
        match name {
            "Ref" => self.reference(args.as_str().expect("Ref names a string")),
            "GetAtt" => {
                let (resource, attribute) = match args {
                    Yaml::String(s) => {
                        let (r, a) = s.split_once('.').expect("GetAtt X.Attr");
                        (r.to_owned(), a.to_owned())
                    }
                    Yaml::Sequence(items) => (
                        items[0].as_str().unwrap_or_default().to_owned(),
                        items[1].as_str().unwrap_or_default().to_owned(),
                    ),
                    other => panic!("GetAtt of {other:?}"),
                };
                self.resource(&resource);
                json!(format!("{resource}.{attribute}"))
            }
            "Sub" => match args {
                Yaml::String(s) => json!(self.sub(s, &BTreeMap::new())),
                Yaml::Sequence(items) => {
                    let variables = items[1]
                        .as_mapping()
                        .expect("Fn::Sub variables are a map")
                        .iter()
                        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), self.eval(v)))
                        .collect();
                    json!(self.sub(items[0].as_str().expect("a Sub string"), &variables))
                }
                other => panic!("Sub of {other:?}"),
            },
            "Join" => {
                let delimiter = self.eval(&args[0]);
                let parts = self.eval(&args[1]);
                let parts: Vec<String> = parts
                    .as_array()
                    .expect("Join takes a list")
                    .iter()
                    .map(text)
                    .collect();
                json!(parts.join(&text(&delimiter)))
            }
            "Split" => {
                let delimiter = text(&self.eval(&args[0]));
                let whole = text(&self.eval(&args[1]));
                Value::Array(whole.split(&delimiter).map(|s| json!(s)).collect())
            }
            "If" => {
                let condition = args[0].as_str().expect("If names a condition");
                let chosen = if self.conditions[condition] {
                    &args[1]
                } else {
                    &args[2]
                };
                self.eval(chosen)
            }
            other => panic!("intrinsic function {other} is not supported here"),
        }
    }
}

/// The lines of `template.yaml` between these markers are generated from `dashboards/*.json`.
pub const BEGIN_DASHBOARDS: &str = "  # BEGIN GENERATED DASHBOARDS";
pub const END_DASHBOARDS: &str = "  # END GENERATED DASHBOARDS";

/// The dashboard files, by name, sorted.
pub fn dashboard_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(root().join("dashboards"))
        .expect("dashboards/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("a file name")
                .to_owned();
            let body = std::fs::read_to_string(&path).expect("a dashboard file is readable");
            (name, body)
        })
        .collect();
    files.sort();
    files
}

/// `spend` → `SpendDashboard`, `job-states` → `JobStatesDashboard`.
pub fn dashboard_logical_id(name: &str) -> String {
    let mut id: String = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    id.push_str("Dashboard");
    id
}

/// The placeholders a dashboard file may use: the template's parameters and resources
/// (`${Name}`, `${Resource.Attribute}`), `${AWS::…}` pseudo parameters, and `${MetricsNamespace}`.
/// Everything else in `${…}` is a CloudWatch dynamic label and is escaped as `${!…}`.
pub fn is_template_placeholder(inner: &str, template: &Yaml) -> bool {
    let declared = |section: &str, name: &str| {
        template[section]
            .as_mapping()
            .is_some_and(|m| m.contains_key(name))
    };
    let head = inner.split('.').next().unwrap_or_default();
    inner == "MetricsNamespace"
        || inner.starts_with("AWS::")
        || declared("Parameters", inner)
        || (declared("Resources", head) && !inner.contains('('))
}

/// A dashboard file's text with CloudWatch's own `${…}` escaped from `Fn::Sub`.
pub fn escape_for_sub(body: &str, template: &Yaml) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        let inner = &after[..end];
        out.push_str(if is_template_placeholder(inner, template) {
            "${"
        } else {
            "${!"
        });
        out.push_str(inner);
        out.push('}');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The generated part of `template.yaml`: one `AWS::CloudWatch::Dashboard` per file.
pub fn generated_dashboards(template: &Yaml) -> String {
    let mut out = String::new();
    out.push_str(BEGIN_DASHBOARDS);
    out.push('\n');
    out.push_str(
        "  # Generated from dashboards/*.json: edit those files, then run\n  \
         #   BATCHGUARD_BLESS=1 cargo test -p batchguard-tests --test deployment\n  \
         # (CloudWatch's own ${…} labels are escaped as ${!…} for Fn::Sub).\n",
    );
    for (name, body) in dashboard_files() {
        out.push_str(&format!(
            "  {id}:\n    Type: AWS::CloudWatch::Dashboard\n    Properties:\n      \
             DashboardName: !Sub ${{AWS::StackName}}-{name}\n      DashboardBody: !Sub\n        - |-\n",
            id = dashboard_logical_id(&name)
        ));
        for line in escape_for_sub(body.trim_end(), template).lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("          ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("        - MetricsNamespace: !Sub batchguard/${AWS::StackName}\n");
    }
    out.push_str(END_DASHBOARDS);
    out
}

/// `template.yaml` with its generated part made anew.
pub fn template_with_dashboards(text: &str) -> String {
    let template: Yaml = serde_norway::from_str(text).expect("template.yaml is YAML");
    let start = text
        .find(BEGIN_DASHBOARDS)
        .expect("template.yaml has the BEGIN GENERATED DASHBOARDS marker");
    let end = text
        .find(END_DASHBOARDS)
        .expect("template.yaml has the END GENERATED DASHBOARDS marker")
        + END_DASHBOARDS.len();
    format!(
        "{}{}{}",
        &text[..start],
        generated_dashboards(&template),
        &text[end..]
    )
}
