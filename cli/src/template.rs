//! Loading `template.yaml` and resolving its intrinsic functions.
//!
//! The YAML crate is `serde_norway`: the maintained fork of `serde_yaml` 0.9
//! (same API, still released, no `unsafe` in this crate's code). Its
//! [`Value::Tagged`] keeps CloudFormation's short-form tags (`!Ref`,
//! `!GetAtt`, `!Sub`) instead of failing or dropping them, which is all a
//! resolver needs. `yaml-rust2`/`saphyr` would also see tags but have no serde
//! integration; `serde_yaml` itself is deprecated.
//!
//! Only the subset the template's conventions allow is resolved (see the
//! comment at the top of `template.yaml`):
//!
//! - `!Ref X` / `{"Ref": X}`: a parameter's Default, a pseudo parameter, or the
//!   physical id of a resource (queue URL, table name, function name).
//! - `!GetAtt X.Attr` / `!GetAtt [X, Attr]` / `{"Fn::GetAtt": ...}`.
//! - `!Sub "string"` / `{"Fn::Sub": "string"}` with `${AWS::StackName}`,
//!   `${AWS::Region}`, `${AWS::AccountId}`, `${AWS::Partition}`, `${Param}`,
//!   `${Resource}`, `${Resource.Attr}` and `${!Literal}`.
//!
//! Anything else is refused with an error that names the resource, the
//! property and the construct. Properties are resolved one at a time, only
//! when the runner needs them, so an unsupported construct in a resource the
//! runner never touches (an alarm, a KMS key) does no harm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// The account id moto (and so the local stack) uses.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// The stack name used when none is given.
pub const DEFAULT_STACK_NAME: &str = "pipeline-local";

/// What went wrong while loading or resolving the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The template path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("template {path} is not valid YAML: {source}")]
    Parse {
        /// The template path.
        path: PathBuf,
        /// The parser error.
        source: serde_norway::Error,
    },
    /// The template's structure is not what a SAM template looks like, or it
    /// uses a section the local runner cannot honour.
    #[error("template: {0}")]
    Invalid(String),
    /// An intrinsic function or construct outside the supported subset.
    #[error(
        "{resource}: {property}: {construct} is not supported by the local runner \
         (supported: !Ref, !GetAtt Resource.Attribute, !Sub \"string\" with ${{AWS::StackName}}, \
         ${{AWS::Region}}, ${{AWS::AccountId}}, ${{Resource}}, ${{Resource.Attribute}})"
    )]
    Unsupported {
        /// Logical id of the resource holding the construct.
        resource: String,
        /// Property path inside it.
        property: String,
        /// The construct, e.g. `!Join` or `!GetAtt ItemsTable.Foo`.
        construct: String,
    },
    /// A reference that cannot be resolved locally.
    #[error("{resource}: {property}: cannot resolve {reference}: {reason}")]
    Unresolved {
        /// Logical id of the resource holding the reference.
        resource: String,
        /// Property path inside it.
        property: String,
        /// The reference as written, e.g. `!Ref AlarmTopic`.
        reference: String,
        /// Why.
        reason: String,
    },
    /// A property has the wrong shape or value.
    #[error("{resource}: {property}: {message}")]
    BadProperty {
        /// Logical id of the resource.
        resource: String,
        /// Property path.
        property: String,
        /// What is wrong.
        message: String,
    },
}

/// One resource of the template.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The logical id, e.g. `ProcessingQueue`.
    pub logical_id: String,
    /// The resource type, e.g. `AWS::SQS::Queue`.
    pub kind: String,
    properties: Mapping,
    metadata: Value,
}

impl Resource {
    /// The raw (unresolved) property `name`.
    pub fn raw_property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }

    /// The names of the properties that are set.
    pub fn property_names(&self) -> Vec<String> {
        self.properties.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()
    }

    /// `Metadata.BuildProperties.Binary` (SAM's cargo-lambda build method):
    /// the binary, and so the function name `cargo lambda watch` serves.
    pub fn build_binary(&self) -> Option<String> {
        self.metadata.get("BuildProperties")?.get("Binary")?.as_str().map(str::to_owned)
    }

    /// The logical ids of the resources this resource's properties refer to.
    pub fn references(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for value in self.properties.values() {
            collect_references(value, &mut out);
        }
        out
    }
}

/// A loaded SAM/CloudFormation template.
#[derive(Debug, Clone)]
pub struct Template {
    path: PathBuf,
    parameters: BTreeMap<String, Option<String>>,
    resources: BTreeMap<String, Resource>,
}

impl Template {
    /// Reads and parses the template at `path`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_owned(), source })?;
        Self::from_str_at(&text, path)
    }

    /// Parses a template held in memory (`origin` names it in messages).
    pub fn from_yaml(text: &str, origin: impl AsRef<Path>) -> Result<Self, TemplateError> {
        Self::from_str_at(text, origin.as_ref())
    }

    fn from_str_at(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let doc: Value =
            serde_norway::from_str(text).map_err(|source| TemplateError::Parse { path: path.to_owned(), source })?;
        let Value::Mapping(root) = doc else {
            return Err(TemplateError::Invalid(format!("{}: the document is not a mapping", path.display())));
        };
        // Sections that would change resource settings behind the runner's
        // back are refused rather than ignored.
        for section in ["Globals", "Conditions"] {
            if root.contains_key(section) {
                return Err(TemplateError::Invalid(format!(
                    "{}: the {section} section is not supported by the local runner; spell settings out per resource",
                    path.display()
                )));
            }
        }
        let mut parameters = BTreeMap::new();
        if let Some(params) = root.get("Parameters") {
            let Value::Mapping(params) = params else {
                return Err(TemplateError::Invalid("Parameters is not a mapping".into()));
            };
            for (name, spec) in params {
                let name =
                    name.as_str().ok_or_else(|| TemplateError::Invalid("a parameter name is not a string".into()))?;
                let default = spec.get("Default").and_then(scalar_to_string);
                parameters.insert(name.to_owned(), default);
            }
        }
        let Some(Value::Mapping(res)) = root.get("Resources") else {
            return Err(TemplateError::Invalid(format!("{}: no Resources mapping", path.display())));
        };
        let mut resources = BTreeMap::new();
        for (id, body) in res {
            let id =
                id.as_str().ok_or_else(|| TemplateError::Invalid("a resource logical id is not a string".into()))?;
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Invalid(format!("resource {id} has no Type")))?;
            let properties = match body.get("Properties") {
                None | Some(Value::Null) => Mapping::new(),
                Some(Value::Mapping(m)) => m.clone(),
                Some(_) => return Err(TemplateError::Invalid(format!("resource {id}: Properties is not a mapping"))),
            };
            if body.get("Condition").is_some() {
                return Err(TemplateError::Invalid(format!(
                    "resource {id}: Condition is not supported by the local runner"
                )));
            }
            let metadata = body.get("Metadata").cloned().unwrap_or(Value::Null);
            resources.insert(
                id.to_owned(),
                Resource { logical_id: id.to_owned(), kind: kind.to_owned(), properties, metadata },
            );
        }
        Ok(Self { path: path.to_owned(), parameters, resources })
    }

    /// Where the template was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All resources, by logical id.
    pub fn resources(&self) -> &BTreeMap<String, Resource> {
        &self.resources
    }

    /// One resource.
    pub fn resource(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.get(logical_id)
    }

    /// The resources of one type, e.g. `AWS::SQS::Queue`.
    pub fn resources_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.values().filter(move |r| r.kind == kind)
    }
}

/// The stack-wide values the pseudo parameters resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackContext {
    /// `AWS::StackName`.
    pub stack_name: String,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
}

impl StackContext {
    /// A context with the local account id ([`LOCAL_ACCOUNT_ID`]).
    pub fn local(stack_name: impl Into<String>, region: impl Into<String>) -> Self {
        Self { stack_name: stack_name.into(), region: region.into(), account_id: LOCAL_ACCOUNT_ID.to_owned() }
    }

    /// `AWS::Partition`.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

/// What a resource resolves to once it exists: its `Ref` value and its
/// `Fn::GetAtt` attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhysicalResource {
    /// The value of `!Ref`.
    pub ref_value: String,
    /// The attributes `!GetAtt` can read.
    pub attributes: BTreeMap<String, String>,
}

/// The physical resources known so far (filled while provisioning).
#[derive(Debug, Clone, Default)]
pub struct Physical {
    resources: BTreeMap<String, PhysicalResource>,
}

impl Physical {
    /// Records a resource.
    pub fn insert(&mut self, logical_id: impl Into<String>, resource: PhysicalResource) {
        self.resources.insert(logical_id.into(), resource);
    }

    /// Looks a resource up.
    pub fn get(&self, logical_id: &str) -> Option<&PhysicalResource> {
        self.resources.get(logical_id)
    }
}

/// Resolves intrinsic functions against a template, a stack context and the
/// physical resources known so far.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    template: &'a Template,
    ctx: &'a StackContext,
    physical: &'a Physical,
}

impl<'a> Resolver<'a> {
    /// A resolver.
    pub fn new(template: &'a Template, ctx: &'a StackContext, physical: &'a Physical) -> Self {
        Self { template, ctx, physical }
    }

    /// Resolves the property `name` of `resource` into plain JSON, or `None`
    /// when it is not set.
    pub fn property(&self, resource: &Resource, name: &str) -> Result<Option<serde_json::Value>, TemplateError> {
        match resource.properties.get(name) {
            None => Ok(None),
            Some(v) => self.resolve(&resource.logical_id, name, v).map(Some),
        }
    }

    /// Resolves any value found at `resource` / `property` into plain JSON.
    pub fn resolve(&self, resource: &str, property: &str, value: &Value) -> Result<serde_json::Value, TemplateError> {
        let at = At { resource };
        self.value(&at, property, value)
    }

    fn value(&self, at: &At<'_>, path: &str, value: &Value) -> Result<serde_json::Value, TemplateError> {
        Ok(match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Sequence(items) => serde_json::Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.value(at, &format!("{path}[{i}]"), v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                self.intrinsic(at, path, name, &format!("!{name}"), &tagged.value)?
            }
            Value::Mapping(map) => {
                if map.len() == 1 {
                    if let Some((Value::String(key), inner)) = map.iter().next() {
                        if key == "Ref" {
                            return self.intrinsic(at, path, "Ref", "Ref", inner);
                        }
                        if let Some(name) = key.strip_prefix("Fn::") {
                            return self.intrinsic(at, path, name, key, inner);
                        }
                    }
                }
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let key = scalar_to_string(k).ok_or_else(|| TemplateError::BadProperty {
                        resource: at.resource.to_owned(),
                        property: path.to_owned(),
                        message: "a mapping key is not a scalar".into(),
                    })?;
                    let child = self.value(at, &format!("{path}.{key}"), v)?;
                    out.insert(key, child);
                }
                serde_json::Value::Object(out)
            }
        })
    }

    fn intrinsic(
        &self,
        at: &At<'_>,
        path: &str,
        name: &str,
        spelled: &str,
        arg: &Value,
    ) -> Result<serde_json::Value, TemplateError> {
        let unsupported = |construct: String| TemplateError::Unsupported {
            resource: at.resource.to_owned(),
            property: path.to_owned(),
            construct,
        };
        match name {
            "Ref" => {
                let Some(target) = arg.as_str() else {
                    return Err(unsupported(format!("{spelled} with a non-string argument")));
                };
                self.reference(at, path, target, &format!("!Ref {target}")).map(serde_json::Value::String)
            }
            "GetAtt" => {
                let (target, attr) = match arg {
                    Value::String(s) => match s.split_once('.') {
                        Some((t, a)) => (t.to_owned(), a.to_owned()),
                        None => return Err(unsupported(format!("{spelled} {s} (expected Resource.Attribute)"))),
                    },
                    Value::Sequence(items) if items.len() == 2 => match (items[0].as_str(), items[1].as_str()) {
                        (Some(t), Some(a)) => (t.to_owned(), a.to_owned()),
                        _ => return Err(unsupported(format!("{spelled} with a non-string list"))),
                    },
                    _ => return Err(unsupported(format!("{spelled} with an unexpected argument"))),
                };
                self.attribute(at, path, &target, &attr).map(serde_json::Value::String)
            }
            "Sub" => match arg {
                Value::String(s) => self.substitute(at, path, s).map(serde_json::Value::String),
                Value::Sequence(_) => Err(unsupported(format!("{spelled} with a variable map (use !Sub \"string\")"))),
                _ => Err(unsupported(format!("{spelled} with a non-string argument"))),
            },
            _ => Err(unsupported(spelled.to_owned())),
        }
    }

    fn reference(&self, at: &At<'_>, path: &str, target: &str, spelled: &str) -> Result<String, TemplateError> {
        let unresolved = |reason: String| TemplateError::Unresolved {
            resource: at.resource.to_owned(),
            property: path.to_owned(),
            reference: spelled.to_owned(),
            reason,
        };
        match target {
            "AWS::StackName" => return Ok(self.ctx.stack_name.clone()),
            "AWS::Region" => return Ok(self.ctx.region.clone()),
            "AWS::AccountId" => return Ok(self.ctx.account_id.clone()),
            "AWS::Partition" => return Ok(self.ctx.partition().to_owned()),
            t if t.starts_with("AWS::") => {
                return Err(TemplateError::Unsupported {
                    resource: at.resource.to_owned(),
                    property: path.to_owned(),
                    construct: format!("pseudo parameter {t}"),
                })
            }
            _ => {}
        }
        if let Some(default) = self.template.parameters.get(target) {
            return default.clone().ok_or_else(|| {
                unresolved(format!("parameter {target} has no Default (the local runner cannot prompt)"))
            });
        }
        if let Some(p) = self.physical.get(target) {
            return Ok(p.ref_value.clone());
        }
        Err(unresolved(self.missing_reason(target)))
    }

    fn attribute(&self, at: &At<'_>, path: &str, target: &str, attr: &str) -> Result<String, TemplateError> {
        let spelled = format!("!GetAtt {target}.{attr}");
        let Some(p) = self.physical.get(target) else {
            return Err(TemplateError::Unresolved {
                resource: at.resource.to_owned(),
                property: path.to_owned(),
                reference: spelled,
                reason: self.missing_reason(target),
            });
        };
        p.attributes.get(attr).cloned().ok_or_else(|| {
            let known: Vec<&str> = p.attributes.keys().map(String::as_str).collect();
            TemplateError::Unsupported {
                resource: at.resource.to_owned(),
                property: path.to_owned(),
                construct: format!("{spelled} (attributes available locally: {})", known.join(", ")),
            }
        })
    }

    fn missing_reason(&self, target: &str) -> String {
        match self.template.resources.get(target) {
            Some(r) => format!("{target} is a {} that the local runner does not create", r.kind),
            None => format!("no resource or parameter named {target} in {}", self.template.path.display()),
        }
    }

    fn substitute(&self, at: &At<'_>, path: &str, s: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(TemplateError::BadProperty {
                    resource: at.resource.to_owned(),
                    property: path.to_owned(),
                    message: format!("unterminated ${{ in !Sub {s:?}"),
                });
            };
            let var = after[..end].trim();
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if !var.starts_with("AWS::") && var.contains('.') {
                let (target, attr) = var.split_once('.').unwrap_or((var, ""));
                out.push_str(&self.attribute(at, path, target, attr)?);
            } else {
                out.push_str(&self.reference(at, path, var, &format!("${{{var}}} in !Sub"))?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

struct At<'a> {
    resource: &'a str,
}

fn number_to_json(n: &serde_norway::Number) -> serde_json::Value {
    if let Some(i) = n.as_i64() {
        serde_json::Value::from(i)
    } else if let Some(u) = n.as_u64() {
        serde_json::Value::from(u)
    } else {
        n.as_f64().and_then(serde_json::Number::from_f64).map(serde_json::Value::Number).unwrap_or_default()
    }
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Collects the logical ids a value refers to through `Ref`, `GetAtt` and
/// `Sub` (pseudo parameters excluded).
fn collect_references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Sequence(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Mapping(map) => {
            for (k, v) in map {
                match k.as_str() {
                    Some("Ref") => {
                        if let Some(t) = v.as_str() {
                            add_reference(t, out);
                        }
                    }
                    Some("Fn::GetAtt") => getatt_reference(v, out),
                    Some("Fn::Sub") => sub_references(v, out),
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            match tag.trim_start_matches('!') {
                "Ref" => {
                    if let Some(s) = t.value.as_str() {
                        add_reference(s, out);
                    }
                }
                "GetAtt" => getatt_reference(&t.value, out),
                "Sub" => sub_references(&t.value, out),
                _ => collect_references(&t.value, out),
            }
        }
        _ => {}
    }
}

fn add_reference(target: &str, out: &mut BTreeSet<String>) {
    if !target.starts_with("AWS::") {
        out.insert(target.to_owned());
    }
}

fn getatt_reference(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => add_reference(s.split('.').next().unwrap_or(s), out),
        Value::Sequence(items) => {
            if let Some(t) = items.first().and_then(Value::as_str) {
                add_reference(t, out);
            }
        }
        _ => {}
    }
}

fn sub_references(v: &Value, out: &mut BTreeSet<String>) {
    let s = match v {
        Value::String(s) => s.as_str(),
        Value::Sequence(items) => match items.first().and_then(Value::as_str) {
            Some(s) => s,
            None => return,
        },
        _ => return,
    };
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { return };
        let var = after[..end].trim();
        if !var.starts_with('!') {
            add_reference(var.split('.').next().unwrap_or(var), out);
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const YAML: &str = r#"
Parameters:
  Env:
    Type: String
    Default: dev
  NoDefault:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-q-${Env}"
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: 5
      Long:
        Fn::GetAtt: [Dlq, QueueName]
      LongRef: { Ref: Dlq }
      Literal: !Sub "${!NotAVar}-${AWS::Region}-${AWS::AccountId}-${Dlq}-${Dlq.Arn}"
      Joined: !Join ["-", [a, b]]
      SubMap: !Sub ["${x}", {x: 1}]
      Topic: !Ref Topic
      Missing: !Ref Nope
      BadAttr: !GetAtt Dlq.Foo
      Needs: !Ref NoDefault
      Pseudo: !Ref AWS::NoValue
  Dlq:
    Type: AWS::SQS::Queue
  Topic:
    Type: AWS::SNS::Topic
"#;

    fn fixture() -> (Template, StackContext, Physical) {
        let t = Template::from_yaml(YAML, "test.yaml").unwrap();
        let ctx = StackContext::local("stk", "eu-west-1");
        let mut p = Physical::default();
        p.insert(
            "Dlq",
            PhysicalResource {
                ref_value: "http://q/dlq".into(),
                attributes: [("Arn".to_owned(), "arn:dlq".to_owned()), ("QueueName".to_owned(), "dlq".to_owned())]
                    .into(),
            },
        );
        (t, ctx, p)
    }

    fn prop(name: &str) -> Result<Option<serde_json::Value>, TemplateError> {
        let (t, ctx, p) = fixture();
        let r = Resolver::new(&t, &ctx, &p);
        r.property(t.resource("Queue").unwrap(), name)
    }

    #[test]
    fn resolves_sub_ref_and_getatt_in_both_forms() {
        assert_eq!(prop("QueueName").unwrap(), Some(json!("stk-q-dev")));
        assert_eq!(
            prop("RedrivePolicy").unwrap(),
            Some(json!({"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}))
        );
        assert_eq!(prop("Long").unwrap(), Some(json!("dlq")));
        assert_eq!(prop("LongRef").unwrap(), Some(json!("http://q/dlq")));
        assert_eq!(prop("Literal").unwrap(), Some(json!("${NotAVar}-eu-west-1-123456789012-http://q/dlq-arn:dlq")));
        assert_eq!(prop("Absent").unwrap(), None);
    }

    #[test]
    fn refuses_unsupported_constructs_naming_resource_property_and_construct() {
        let e = prop("Joined").unwrap_err().to_string();
        assert!(e.contains("Queue: Joined: !Join is not supported"), "{e}");
        let e = prop("SubMap").unwrap_err().to_string();
        assert!(e.contains("variable map"), "{e}");
        let e = prop("Topic").unwrap_err().to_string();
        assert!(e.contains("!Ref Topic") && e.contains("AWS::SNS::Topic"), "{e}");
        let e = prop("Missing").unwrap_err().to_string();
        assert!(e.contains("no resource or parameter named Nope"), "{e}");
        let e = prop("BadAttr").unwrap_err().to_string();
        assert!(e.contains("!GetAtt Dlq.Foo") && e.contains("Arn"), "{e}");
        let e = prop("Needs").unwrap_err().to_string();
        assert!(e.contains("no Default"), "{e}");
        let e = prop("Pseudo").unwrap_err().to_string();
        assert!(e.contains("AWS::NoValue"), "{e}");
    }

    #[test]
    fn collects_references_for_ordering() {
        let (t, _, _) = fixture();
        let refs = t.resource("Queue").unwrap().references();
        assert!(refs.contains("Dlq") && refs.contains("Topic") && refs.contains("Env"));
        assert!(!refs.iter().any(|r| r.starts_with("AWS::")));
    }

    #[test]
    fn refuses_globals() {
        let e = Template::from_yaml("Globals: {}\nResources: {}\n", "g.yaml").unwrap_err().to_string();
        assert!(e.contains("Globals"), "{e}");
    }

    #[test]
    fn loads_the_project_template() {
        let t = Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        assert_eq!(t.resource("ProcessingQueue").unwrap().kind, "AWS::SQS::Queue");
        assert_eq!(t.resource("QueueProcessorFunction").unwrap().build_binary().as_deref(), Some("queue-processor"));
        assert!(t.resource("ProcessingQueue").unwrap().references().contains("ProcessingDeadLetterQueue"));
    }
}
