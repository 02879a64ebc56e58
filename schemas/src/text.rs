//! The values an event carries, borrowed from the text it was read from.
//!
//! Reading a batch used to copy every string and raw JSON payload into an allocation of its own,
//! only for the ETL to copy it again into an Arrow column and free it. These types borrow from
//! the request body instead: a string without escapes, and any raw JSON, is a slice of the
//! body; only a string with escapes (which must be decoded) is owned. Events built in code (the
//! demo agent, merged partial updates) own their values: `Text<'static>`.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A string, borrowed from the event's text when it has no escapes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Text<'_> {
    fn from(value: String) -> Self {
        Text(Cow::Owned(value))
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(value: &'a str) -> Self {
        Text(Cow::Borrowed(value))
    }
}

impl<'a> From<Cow<'a, str>> for Text<'a> {
    fn from(value: Cow<'a, str>) -> Self {
        Text(value)
    }
}

impl From<Text<'_>> for String {
    fn from(value: Text<'_>) -> Self {
        value.into_string()
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Text<'_> {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(value)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

impl JsonSchema for Text<'_> {
    fn inline_schema() -> bool {
        String::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        String::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

/// Arbitrary JSON (a prompt, a completion, tool arguments), kept byte for byte as received.
#[derive(Clone)]
pub struct Json<'a>(Cow<'a, RawValue>);

impl Json<'_> {
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Wraps JSON text, checking that it is valid JSON.
    pub fn from_text(text: String) -> Result<Json<'static>, serde_json::Error> {
        RawValue::from_string(text).map(|raw| Json(Cow::Owned(raw)))
    }

    pub fn from_value(value: &serde_json::Value) -> Json<'static> {
        let raw = serde_json::value::to_raw_value(value).expect("a JSON value always serializes");
        Json(Cow::Owned(raw))
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| Json(Cow::Borrowed(raw)))
    }
}

impl JsonSchema for Json<'_> {
    fn schema_name() -> Cow<'static, str> {
        "Json".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Any JSON value, stored exactly as sent." })
    }
}

/// A metadata value: a string as it is, or any other JSON value as its text, exactly as sent.
#[derive(Clone, PartialEq)]
pub enum MetaValue<'a> {
    Text(Text<'a>),
    Json(Json<'a>),
}

impl MetaValue<'_> {
    /// What is stored: the string itself, or the JSON text of anything else.
    pub fn as_str(&self) -> &str {
        match self {
            MetaValue::Text(text) => text,
            MetaValue::Json(json) => json.as_str(),
        }
    }

    /// The string, when the value is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            MetaValue::Text(text) => Some(text),
            MetaValue::Json(_) => None,
        }
    }

    /// A value built in code: strings stay strings, anything else becomes its JSON text.
    pub fn from_value(value: &serde_json::Value) -> MetaValue<'static> {
        match value {
            serde_json::Value::String(text) => MetaValue::Text(Text::from(text.clone())),
            other => MetaValue::Json(Json::from_value(other)),
        }
    }
}

impl fmt::Debug for MetaValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Text(text) => fmt::Debug::fmt(text, f),
            MetaValue::Json(json) => fmt::Debug::fmt(json, f),
        }
    }
}

impl From<String> for MetaValue<'_> {
    fn from(value: String) -> Self {
        MetaValue::Text(value.into())
    }
}

impl<'a> From<&'a str> for MetaValue<'a> {
    fn from(value: &'a str) -> Self {
        MetaValue::Text(value.into())
    }
}

impl Serialize for MetaValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetaValue::Text(text) => text.serialize(serializer),
            MetaValue::Json(json) => json.serialize(serializer),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MetaValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        if raw.get().starts_with('"') {
            // Decoded only when it has escapes; otherwise the string's bytes between its quotes.
            serde_json::from_str(raw.get())
                .map(MetaValue::Text)
                .map_err(D::Error::custom)
        } else {
            Ok(MetaValue::Json(Json(Cow::Borrowed(raw))))
        }
    }
}

impl JsonSchema for MetaValue<'_> {
    fn inline_schema() -> bool {
        serde_json::Value::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        serde_json::Value::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        serde_json::Value::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        serde_json::Value::json_schema(generator)
    }
}

/// Free-form key/value metadata. String values are stored as they are; any other JSON value
/// is stored as its JSON text.
pub type Metadata<'a> = BTreeMap<Text<'a>, MetaValue<'a>>;

/// A value that can give up what it borrows: `into_static` copies borrowed text into owned.
pub trait IntoStatic {
    type Static: 'static;

    fn into_static(self) -> Self::Static;
}

impl IntoStatic for Text<'_> {
    type Static = Text<'static>;

    fn into_static(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl IntoStatic for Json<'_> {
    type Static = Json<'static>;

    fn into_static(self) -> Json<'static> {
        Json(Cow::Owned(self.0.into_owned()))
    }
}

impl IntoStatic for MetaValue<'_> {
    type Static = MetaValue<'static>;

    fn into_static(self) -> MetaValue<'static> {
        match self {
            MetaValue::Text(text) => MetaValue::Text(text.into_static()),
            MetaValue::Json(json) => MetaValue::Json(json.into_static()),
        }
    }
}

impl<T: IntoStatic> IntoStatic for Option<T> {
    type Static = Option<T::Static>;

    fn into_static(self) -> Self::Static {
        self.map(T::into_static)
    }
}

impl<T: IntoStatic> IntoStatic for Vec<T> {
    type Static = Vec<T::Static>;

    fn into_static(self) -> Self::Static {
        self.into_iter().map(T::into_static).collect()
    }
}

impl<K: IntoStatic, V: IntoStatic> IntoStatic for BTreeMap<K, V>
where
    K::Static: Ord,
{
    type Static = BTreeMap<K::Static, V::Static>;

    fn into_static(self) -> Self::Static {
        self.into_iter()
            .map(|(key, value)| (key.into_static(), value.into_static()))
            .collect()
    }
}

/// Values that borrow nothing are their own static form.
macro_rules! static_as_is {
    ($($ty:ty),+ $(,)?) => {
        $(impl IntoStatic for $ty {
            type Static = $ty;

            fn into_static(self) -> $ty {
                self
            }
        })+
    };
}

static_as_is!(bool, i32, u32, u64, f64, crate::time::Timestamp);
pub(crate) use static_as_is;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample<'a> {
        #[serde(borrow)]
        plain: Text<'a>,
        #[serde(borrow)]
        escaped: Text<'a>,
        #[serde(borrow)]
        optional: Option<Text<'a>>,
        #[serde(borrow)]
        json: Json<'a>,
        #[serde(borrow)]
        metadata: Metadata<'a>,
    }

    #[test]
    fn text_and_json_borrow_from_the_input_unless_escaped() {
        let input = r#"{"plain":"abc","escaped":"a\"b","optional":"x","json":{"k": [1, 2]},
            "metadata":{"s":"v","e":"\u00e9","n":1.50,"o":{"a": true}}}"#;
        let sample: Sample = serde_json::from_str(input).unwrap();
        assert!(matches!(sample.plain.0, Cow::Borrowed("abc")));
        assert!(matches!(sample.escaped.0, Cow::Owned(ref s) if s == "a\"b"));
        assert!(matches!(
            sample.optional.as_ref().map(|t| &t.0),
            Some(Cow::Borrowed("x"))
        ));
        assert!(matches!(sample.json.0, Cow::Borrowed(_)));
        assert_eq!(sample.json.as_str(), r#"{"k": [1, 2]}"#);
        let values: Vec<(&str, &str)> = sample
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            values,
            [("e", "é"), ("n", "1.50"), ("o", r#"{"a": true}"#), ("s", "v")]
        );
        assert!(matches!(
            sample.metadata.get("s"),
            Some(MetaValue::Text(Text(Cow::Borrowed("v"))))
        ));
    }

    #[test]
    fn into_static_keeps_the_values() {
        let input = r#"{"plain":"abc","escaped":"a\"b","optional":null,"json":[1],"metadata":{"n":2}}"#;
        let sample: Sample = serde_json::from_str(input).unwrap();
        let metadata = sample.metadata.clone().into_static();
        assert_eq!(metadata, sample.metadata);
        assert_eq!(sample.json.clone().into_static(), sample.json);
        assert_eq!(sample.plain.clone().into_static(), "abc");
    }

    #[test]
    fn a_metadata_value_serializes_as_it_was_sent() {
        let input = r#"{"s":"a\nb","n":1e3,"l":[1, "x"]}"#;
        let metadata: Metadata = serde_json::from_str(input).unwrap();
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"l":[1, "x"],"n":1e3,"s":"a\nb"}"#
        );
    }
}
