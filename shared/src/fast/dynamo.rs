//! A serde `Deserializer` that reads DynamoDB JSON (`{"name": {"S": "x"}}`)
//! straight from the event text and drives `T`'s visitor exactly as
//! `serde_dynamo::Deserializer` would after parsing the same JSON into an
//! `AttributeValue`.
//!
//! It mirrors serde_dynamo 4.3 (`src/de/*.rs`) method by method:
//! - the attribute value object must have exactly one known type key
//!   (`N S BOOL B NULL M L SS NS BS`), as `AttributeValue`'s own
//!   `Deserialize` demands; `N` and `S` must be JSON strings, `B` / `BS`
//!   base64 (the same `base64` 0.21 STANDARD engine);
//! - `deserialize_any` on `N` tries `i64`, then `u64`, then `f64`; the sized
//!   number methods parse the text as that type; sets are sequences whose
//!   elements are plain strings (`SS`), numbers (`NS`, same rules as `N`) or
//!   bytes (`BS`); `NULL: true` is `None` / unit; a struct may come from `L`;
//!   an enum from `S` (unit variant) or from a one-key `M`; map keys parse as
//!   integers or booleans when asked;
//! - ignoring an attribute still reads it as `deserialize_any` does, so an
//!   unparsable `N` fails here as it does there.
//!
//! Differences that cannot change a value: strings without escapes reach the
//! visitor through `visit_str` instead of `visit_string` (the default
//! `visit_string` forwards to `visit_str`; no serde or derive visitor treats
//! them differently), and `size_hint`s are absent. Where serde_dynamo would
//! be more lenient (a map with a repeated key keeps the last value in
//! serde_dynamo's `HashMap`; a visitor that stops reading a map or a list
//! early) this path fails and the caller falls back to serde_dynamo.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::value::{StrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, Error as _, IgnoredAny, IntoDeserializer,
    MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde::Deserialize;
use serde_dynamo::AttributeValue;

use super::Text;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An item image decoded straight into `T`.
pub(crate) struct Image<T>(pub(crate) T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Image<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(Payload { tag: Tag::M, de: d }).map(Image)
    }
}

/// Decodes the JSON text of a DynamoDB item (an object of attribute values)
/// into `T`. Fails where serde_dynamo fails, and in the rare cases listed in
/// the module docs where serde_dynamo would not.
pub(crate) fn item_from_json<T: DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let Image(value) = Image::<T>::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    N,
    S,
    Bool,
    B,
    Null,
    M,
    L,
    Ss,
    Ns,
    Bs,
}

impl Tag {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "N" => Self::N,
            "S" => Self::S,
            "BOOL" => Self::Bool,
            "B" => Self::B,
            "NULL" => Self::Null,
            "M" => Self::M,
            "L" => Self::L,
            "SS" => Self::Ss,
            "NS" => Self::Ns,
            "BS" => Self::Bs,
            _ => return None,
        })
    }
}

struct TagSeed;

impl<'de> DeserializeSeed<'de> for TagSeed {
    type Value = Tag;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tag, D::Error> {
        let key = Text::deserialize(d)?;
        Tag::parse(key.as_str())
            .ok_or_else(|| D::Error::custom(format_args!("The key '{}' is not a known DynamoDB prefix", key.as_str())))
    }
}

/// Which `deserialize_*` method the value's `Deserialize` impl called.
#[derive(Clone, Copy)]
enum Hint {
    Any,
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Char,
    Str,
    String,
    Bytes,
    ByteBuf,
    Option,
    Unit,
    UnitStruct(&'static str),
    NewtypeStruct(&'static str),
    Seq,
    Tuple(usize),
    TupleStruct(&'static str, usize),
    Map,
    Struct(&'static str, &'static [&'static str]),
    Enum(&'static str, &'static [&'static str]),
    Identifier,
    IgnoredAny,
}

fn forward<'de, D: Deserializer<'de>, V: Visitor<'de>>(hint: Hint, d: D, v: V) -> Result<V::Value, D::Error> {
    match hint {
        Hint::Any => d.deserialize_any(v),
        Hint::Bool => d.deserialize_bool(v),
        Hint::I8 => d.deserialize_i8(v),
        Hint::I16 => d.deserialize_i16(v),
        Hint::I32 => d.deserialize_i32(v),
        Hint::I64 => d.deserialize_i64(v),
        Hint::U8 => d.deserialize_u8(v),
        Hint::U16 => d.deserialize_u16(v),
        Hint::U32 => d.deserialize_u32(v),
        Hint::U64 => d.deserialize_u64(v),
        Hint::F32 => d.deserialize_f32(v),
        Hint::F64 => d.deserialize_f64(v),
        Hint::Char => d.deserialize_char(v),
        Hint::Str => d.deserialize_str(v),
        Hint::String => d.deserialize_string(v),
        Hint::Bytes => d.deserialize_bytes(v),
        Hint::ByteBuf => d.deserialize_byte_buf(v),
        Hint::Option => d.deserialize_option(v),
        Hint::Unit => d.deserialize_unit(v),
        Hint::UnitStruct(name) => d.deserialize_unit_struct(name, v),
        Hint::NewtypeStruct(name) => d.deserialize_newtype_struct(name, v),
        Hint::Seq => d.deserialize_seq(v),
        Hint::Tuple(len) => d.deserialize_tuple(len, v),
        Hint::TupleStruct(name, len) => d.deserialize_tuple_struct(name, len, v),
        Hint::Map => d.deserialize_map(v),
        Hint::Struct(name, fields) => d.deserialize_struct(name, fields, v),
        Hint::Enum(name, variants) => d.deserialize_enum(name, variants, v),
        Hint::Identifier => d.deserialize_identifier(v),
        Hint::IgnoredAny => d.deserialize_ignored_any(v),
    }
}

/// An attribute value object `{"<TYPE>": <payload>}` not read yet.
struct Attr<D>(D);

/// Reads the type key, hands the payload to [`Payload`] with the caller's
/// method, then requires the object to end.
struct Open<V> {
    hint: Hint,
    visitor: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Open<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object with a single key "N", "S", "BOOL", "B", "NULL", "M", "L", "SS", "NS", or "BS""#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        let Some(tag) = map.next_key_seed(TagSeed)? else {
            return Err(A::Error::custom("Expected exactly one key in the object, found none"));
        };
        let value = map.next_value_seed(PayloadSeed { tag, hint: self.hint, visitor: self.visitor })?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("Expected exactly one key in the object, found multiple keys"));
        }
        Ok(value)
    }
}

struct PayloadSeed<V> {
    tag: Tag,
    hint: Hint,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for PayloadSeed<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        forward(self.hint, Payload { tag: self.tag, de: d }, self.visitor)
    }
}

macro_rules! attr_method {
    ($method:ident => $hint:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Open { hint: $hint, visitor })
        }
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Attr<D> {
    type Error = D::Error;

    attr_method!(deserialize_any => Hint::Any);
    attr_method!(deserialize_bool => Hint::Bool);
    attr_method!(deserialize_i8 => Hint::I8);
    attr_method!(deserialize_i16 => Hint::I16);
    attr_method!(deserialize_i32 => Hint::I32);
    attr_method!(deserialize_i64 => Hint::I64);
    attr_method!(deserialize_u8 => Hint::U8);
    attr_method!(deserialize_u16 => Hint::U16);
    attr_method!(deserialize_u32 => Hint::U32);
    attr_method!(deserialize_u64 => Hint::U64);
    attr_method!(deserialize_f32 => Hint::F32);
    attr_method!(deserialize_f64 => Hint::F64);
    attr_method!(deserialize_char => Hint::Char);
    attr_method!(deserialize_str => Hint::Str);
    attr_method!(deserialize_string => Hint::String);
    attr_method!(deserialize_bytes => Hint::Bytes);
    attr_method!(deserialize_byte_buf => Hint::ByteBuf);
    attr_method!(deserialize_option => Hint::Option);
    attr_method!(deserialize_unit => Hint::Unit);
    attr_method!(deserialize_seq => Hint::Seq);
    attr_method!(deserialize_map => Hint::Map);
    attr_method!(deserialize_identifier => Hint::Identifier);
    attr_method!(deserialize_ignored_any => Hint::IgnoredAny);

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::UnitStruct(name), visitor })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::NewtypeStruct(name), visitor })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::Tuple(len), visitor })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::TupleStruct(name, len), visitor })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::Struct(name, fields), visitor })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Open { hint: Hint::Enum(name, variants), visitor })
    }
}

/// The payload of an attribute value whose type is `tag`; `de` is positioned
/// on it. This is where serde_dynamo's `Deserializer` semantics live.
struct Payload<D> {
    tag: Tag,
    de: D,
}

fn unexpected<E: de::Error>(what: &str) -> E {
    E::custom(what)
}

fn base64<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    BASE64.decode(text).map_err(|err| E::custom(format_args!("Failed to decode base64: {err}")))
}

/// `serde_dynamo`'s number rule for `deserialize_any`: `i64`, else `u64`,
/// else `f64`.
fn number_any<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    if let Ok(i) = text.parse::<i64>() {
        return visitor.visit_i64(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return visitor.visit_u64(u);
    }
    match text.parse::<f64>() {
        Ok(f) => visitor.visit_f64(f),
        Err(err) => Err(E::custom(format_args!("Failed to parse '{text}' as a float: {err}"))),
    }
}

/// Hands a string to the visitor: borrowed text as `visit_str`, unescaped
/// text as `visit_string`.
fn visit_text<'de, V: Visitor<'de>, E: de::Error>(text: Text<'_>, visitor: V) -> Result<V::Value, E> {
    match text.0 {
        Cow::Borrowed(s) => visitor.visit_str(s),
        Cow::Owned(s) => visitor.visit_string(s),
    }
}

macro_rules! payload_number {
    ($method:ident, $ty:ty, $visit:ident, $what:literal) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            if self.tag != Tag::N {
                return Err(unexpected("Expected num"));
            }
            let text = Text::deserialize(self.de)?;
            let n = text.as_str().parse::<$ty>().map_err(|err| {
                D::Error::custom(format_args!(concat!("Failed to parse '{}' as ", $what, ": {}"), text.as_str(), err))
            })?;
            visitor.$visit(n)
        }
    };
}

impl<'de, D: Deserializer<'de>> Payload<D> {
    fn text(self) -> Result<Text<'de>, D::Error> {
        Text::deserialize(self.de)
    }

    fn string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::S {
            return Err(unexpected("Expected string"));
        }
        visit_text(self.text()?, visitor)
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Payload<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        match self.tag {
            Tag::N => number_any(self.text()?.as_str(), visitor),
            Tag::S => visit_text(self.text()?, visitor),
            Tag::Bool => visitor.visit_bool(bool::deserialize(self.de)?),
            Tag::B => visitor.visit_bytes(&base64::<D::Error>(self.text()?.as_str())?),
            Tag::Null => self.deserialize_unit(visitor),
            Tag::M => self.de.deserialize_map(MapPayload(visitor)),
            Tag::L | Tag::Ss | Tag::Ns | Tag::Bs => self.deserialize_seq(visitor),
        }
    }

    payload_number!(deserialize_i8, i8, visit_i8, "an integer");
    payload_number!(deserialize_i16, i16, visit_i16, "an integer");
    payload_number!(deserialize_i32, i32, visit_i32, "an integer");
    payload_number!(deserialize_i64, i64, visit_i64, "an integer");
    payload_number!(deserialize_u8, u8, visit_u8, "an integer");
    payload_number!(deserialize_u16, u16, visit_u16, "an integer");
    payload_number!(deserialize_u32, u32, visit_u32, "an integer");
    payload_number!(deserialize_u64, u64, visit_u64, "an integer");
    payload_number!(deserialize_f32, f32, visit_f32, "a float");
    payload_number!(deserialize_f64, f64, visit_f64, "a float");

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.string(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let kind = match self.tag {
            Tag::L => Element::Attr,
            Tag::Ss => Element::Str,
            Tag::Ns => Element::Num,
            Tag::Bs => Element::Bin,
            _ => return Err(unexpected("Expected seq")),
        };
        self.de.deserialize_seq(SeqPayload { kind, visitor })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::M {
            return Err(unexpected("Expected map"));
        }
        self.de.deserialize_map(MapPayload(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if self.tag == Tag::L {
            self.deserialize_seq(visitor)
        } else {
            self.deserialize_map(visitor)
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::Bool {
            return Err(unexpected("Expected bool"));
        }
        visitor.visit_bool(bool::deserialize(self.de)?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::S {
            return Err(unexpected("Expected char"));
        }
        let text = self.text()?;
        let mut chars = text.as_str().chars();
        let Some(ch) = chars.next() else { return Err(unexpected("Expected char")) };
        let value = visitor.visit_char(ch)?;
        if chars.next().is_some() {
            return Err(unexpected("Expected char"));
        }
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag == Tag::Null && bool::deserialize(self.de)? {
            visitor.visit_unit()
        } else {
            Err(unexpected("Expected unit"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag == Tag::Null && bool::deserialize(self.de)? {
            visitor.visit_unit()
        } else {
            Err(unexpected("Expected unit struct"))
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        match self.tag {
            Tag::S => match self.text()?.0 {
                Cow::Borrowed(s) => visitor.visit_enum::<StrDeserializer<'_, D::Error>>(s.into_deserializer()),
                Cow::Owned(s) => visitor.visit_enum::<StringDeserializer<D::Error>>(s.into_deserializer()),
            },
            Tag::M => self.de.deserialize_map(EnumPayload(visitor)),
            _ => Err(unexpected("Expected enum")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::B {
            return Err(unexpected("Expected binary data"));
        }
        visitor.visit_bytes(&base64::<D::Error>(self.text()?.as_str())?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if self.tag != Tag::Null {
            return visitor.visit_some(self);
        }
        if bool::deserialize(self.de)? {
            return visitor.visit_none();
        }
        // `NULL: false` is `Some` of a value that is nothing else: let
        // serde_dynamo itself say what that gives.
        serde_dynamo::Deserializer::from_attribute_value(AttributeValue::Null(false))
            .deserialize_option(visitor)
            .map_err(D::Error::custom)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_any(visitor)
    }
}

/// The `M` payload: a JSON object of attribute values.
struct MapPayload<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapPayload<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of attribute values")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Entries { map, seen: Seen::default() })
    }
}

/// Hashes of the keys read so far, to refuse a repeated key (serde_dynamo's
/// `HashMap` would keep only the last; see the module docs).
#[derive(Default)]
struct Seen {
    inline: [u64; 16],
    len: usize,
    spill: Vec<u64>,
}

impl Seen {
    /// `false` when the key was seen before (or collides with one: the
    /// caller then falls back to the reference path, which is always right).
    fn insert(&mut self, key: &str) -> bool {
        // FNV-1a.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let n = self.len.min(self.inline.len());
        if self.inline[..n].contains(&h) || self.spill.contains(&h) {
            return false;
        }
        if self.len < self.inline.len() {
            self.inline[self.len] = h;
        } else {
            self.spill.push(h);
        }
        self.len += 1;
        true
    }
}

struct Entries<A> {
    map: A,
    seen: Seen,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.map.next_key_seed(KeySeed { seed, seen: &mut self.seen })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(AttrSeed(seed))
    }
}

struct KeySeed<'s, K> {
    seed: K,
    seen: &'s mut Seen,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        let key = Text::deserialize(d)?;
        if !self.seen.insert(key.as_str()) {
            return Err(D::Error::custom("repeated key"));
        }
        self.seed.deserialize(Key { key: key.0, error: PhantomData })
    }
}

/// An attribute value, for a seed.
struct AttrSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for AttrSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Attr(d))
    }
}

/// A map key, as serde_dynamo's `DeserializerMapKey` presents it.
struct Key<'k, E> {
    key: Cow<'k, str>,
    error: PhantomData<E>,
}

macro_rules! key_integer {
    ($method:ident => $visit:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            let n = self.key.parse().map_err(|_| E::custom("Expected num"))?;
            visitor.$visit(n)
        }
    };
}

impl<'de, E: de::Error> Deserializer<'de> for Key<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_string(self.key.into_owned())
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_string(self.key.into_owned())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_string(self.key.into_owned())
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.key {
            Cow::Borrowed(s) => visitor.visit_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_enum::<StringDeserializer<E>>(self.key.into_owned().into_deserializer())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    key_integer!(deserialize_i8 => visit_i8);
    key_integer!(deserialize_i16 => visit_i16);
    key_integer!(deserialize_i32 => visit_i32);
    key_integer!(deserialize_i64 => visit_i64);
    key_integer!(deserialize_i128 => visit_i128);
    key_integer!(deserialize_u8 => visit_u8);
    key_integer!(deserialize_u16 => visit_u16);
    key_integer!(deserialize_u32 => visit_u32);
    key_integer!(deserialize_u64 => visit_u64);
    key_integer!(deserialize_u128 => visit_u128);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match &*self.key {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(E::custom("Expected string")),
        }
    }

    forward_to_deserialize_any! {
        f32 f64 char bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

/// What a list or set holds.
#[derive(Clone, Copy)]
enum Element {
    /// `L`: attribute values.
    Attr,
    /// `SS`: strings, as serde's `StringDeserializer`.
    Str,
    /// `NS`: numbers, as serde_dynamo's `DeserializerNumber`.
    Num,
    /// `BS`: base64, as serde_dynamo's `DeserializerBytes`.
    Bin,
}

struct SeqPayload<V> {
    kind: Element,
    visitor: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SeqPayload<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Elements { seq, kind: self.kind })
    }
}

struct Elements<A> {
    seq: A,
    kind: Element,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        match self.kind {
            Element::Attr => self.seq.next_element_seed(AttrSeed(seed)),
            kind => self.seq.next_element_seed(SetElementSeed { kind, seed }),
        }
    }
}

struct SetElementSeed<S> {
    kind: Element,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SetElementSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        let text = Text::deserialize(d)?;
        match self.kind {
            Element::Num => self.seed.deserialize(Number { text: text.0, error: PhantomData }),
            Element::Bin => {
                self.seed.deserialize(Bytes::<D::Error> { bytes: base64(text.as_str())?, error: PhantomData })
            }
            Element::Str | Element::Attr => {
                self.seed.deserialize::<StringDeserializer<D::Error>>(text.into_owned().into_deserializer())
            }
        }
    }
}

/// An element of a number set, as serde_dynamo's `DeserializerNumber`.
struct Number<'t, E> {
    text: Cow<'t, str>,
    error: PhantomData<E>,
}

macro_rules! number_method {
    ($method:ident, $ty:ty, $visit:ident, $what:literal) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            let n = self.text.parse::<$ty>().map_err(|err| {
                E::custom(format_args!(concat!("Failed to parse '{}' as ", $what, ": {}"), self.text, err))
            })?;
            visitor.$visit(n)
        }
    };
}

impl<'de, E: de::Error> Deserializer<'de> for Number<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        number_any(&self.text, visitor)
    }

    number_method!(deserialize_i8, i8, visit_i8, "an integer");
    number_method!(deserialize_i16, i16, visit_i16, "an integer");
    number_method!(deserialize_i32, i32, visit_i32, "an integer");
    number_method!(deserialize_i64, i64, visit_i64, "an integer");
    number_method!(deserialize_u8, u8, visit_u8, "an integer");
    number_method!(deserialize_u16, u16, visit_u16, "an integer");
    number_method!(deserialize_u32, u32, visit_u32, "an integer");
    number_method!(deserialize_u64, u64, visit_u64, "an integer");
    number_method!(deserialize_f32, f32, visit_f32, "a float");
    number_method!(deserialize_f64, f64, visit_f64, "a float");

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.deserialize_any(visitor)
    }

    forward_to_deserialize_any! {
        str string seq map bool char unit enum bytes tuple option struct byte_buf identifier
        unit_struct tuple_struct newtype_struct
    }
}

/// An element of a binary set, as serde_dynamo's `DeserializerBytes`.
struct Bytes<E> {
    bytes: Vec<u8>,
    error: PhantomData<E>,
}

impl<'de, E: de::Error> Deserializer<'de> for Bytes<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bytes(&self.bytes)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bytes(&self.bytes)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bytes(&self.bytes)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bytes(&self.bytes)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 str string seq map bool char unit enum tuple option struct identifier
        unit_struct tuple_struct newtype_struct
    }
}

/// An enum written as a one-key `M`: `{"Variant": <attribute value>}`.
struct EnumPayload<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for EnumPayload<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with a single key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        let value = self.0.visit_enum(Variant { map: &mut map })?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("Expected an item with a single key"));
        }
        Ok(value)
    }
}

struct Variant<'m, A> {
    map: &'m mut A,
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Variant<'_, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), A::Error> {
        let Some(key) = self.map.next_key::<Text<'de>>()? else {
            return Err(A::Error::custom("Expected an item with a single key"));
        };
        let value = seed.deserialize::<StringDeserializer<A::Error>>(key.into_owned().into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        // serde_dynamo never looks at the value, but it had to be a valid
        // attribute value to get this far.
        self.map.next_value::<AttributeValue>().map(drop)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(AttrSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(WithHint { hint: Hint::Seq, visitor })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(WithHint { hint: Hint::Map, visitor })
    }
}

/// An attribute value read with a given method.
struct WithHint<V> {
    hint: Hint,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for WithHint<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        forward(self.hint, Attr(d), self.visitor)
    }
}
