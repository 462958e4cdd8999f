//! The fast decoding path: one pass over a record's JSON, straight into the
//! typed value, without the intermediate `serde_dynamo::Item` maps or
//! `serde_path_to_error`'s per-key bookkeeping.
//!
//! The fast path never decides an error: when it fails for any reason the
//! caller decodes the record again on the reference path (the original
//! `serde_dynamo` / `serde_path_to_error` code), which produces the error
//! with its attribute path. It must therefore only ever be *stricter* than the
//! reference, never more lenient, and give the same value whenever it
//! succeeds. `shared/tests/differential*.rs` check both.

pub(crate) mod dynamo;

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug)]
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de> Text<'de> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

struct TextVisitor<'a>(std::marker::PhantomData<Text<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}
