//! Typed access to the fields of a JSON object, with errors that name the field's path.
//!
//! CNI configs are open-ended: runtimes and other plugins add keys of their own, so weft ignores
//! keys it does not know (as the reference plugins do), and only logs them
//! ([`super::config::unknown_keys`]). Keys it does know must have the right
//! type; a wrong one is a decoding error (code 6) naming the key, e.g.
//! `ipam.ranges[0][0].subnet: invalid type: integer 5, expected a string`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::CniError;

/// One JSON object and where it sits in the document (`""`, `"ipam."`, …).
#[derive(Clone)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// The document's root, which must be an object.
    pub fn root(value: &'a Value, what: &str) -> Result<Obj<'a>, CniError> {
        match value.as_object() {
            Some(map) => Ok(Obj {
                map,
                path: String::new(),
            }),
            None => Err(CniError::Decoding(format!(
                "{what} must be a JSON object, not {}",
                kind(value)
            ))),
        }
    }

    /// Where this object sits, for messages (`"ipam."`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw value of `key`; `null` counts as absent.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// `key` decoded as `T`, or `None` when absent or null.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CniError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|e| CniError::Decoding(format!("{}{key}: {e}", self.path))),
        }
    }

    /// `key` as a nested object, or `None` when absent.
    pub fn object(&self, key: &str) -> Result<Option<Obj<'a>>, CniError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: format!("{}{key}.", self.path),
            })),
            Some(other) => Err(CniError::Decoding(format!(
                "{}{key}: expected an object, found {}",
                self.path,
                kind(other)
            ))),
        }
    }

    /// The keys present (a `null` counts as absent, as in [`Obj::raw`]).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
    }

    /// A full path for a key of this object, for messages.
    pub fn at(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }
}

/// An object found inside an array or elsewhere, with its own path.
pub fn object_at(value: &Value, path: String) -> Result<Obj<'_>, CniError> {
    match value.as_object() {
        Some(map) => Ok(Obj {
            map,
            path: format!("{path}."),
        }),
        None => Err(CniError::Decoding(format!(
            "{}: expected an object, found {}",
            path,
            kind(value)
        ))),
    }
}

/// `"a string"`, `"an array"`, … for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_name_the_path() {
        let v = json!({"mtu": "big", "ipam": {"subnet": 5}, "x": null});
        let root = Obj::root(&v, "config").unwrap();
        let e = root.get::<u32>("mtu").unwrap_err();
        assert!(e.to_string().starts_with("mtu:"), "{e}");
        let ipam = root.object("ipam").unwrap().unwrap();
        let e = ipam.get::<String>("subnet").unwrap_err();
        assert!(e.to_string().starts_with("ipam.subnet:"), "{e}");
        assert_eq!(root.get::<u32>("x").unwrap(), None);
        assert_eq!(root.get::<u32>("absent").unwrap(), None);
        assert!(root.object("mtu").is_err());
    }

    #[test]
    fn the_root_must_be_an_object() {
        assert!(Obj::root(&json!([1]), "config").is_err());
    }
}
