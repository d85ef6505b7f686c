//! Reading a few members of a JSON object — a job's status, a chat request's model and limits,
//! a response's `usage` — with `serde_json`, without building the document.
//!
//! [`members`] walks the top-level object once: the members asked for are handed over as
//! borrowed [`RawValue`]s (no copy), every other member is skipped with [`IgnoredAny`] (nothing
//! allocated for it). The whole input must be one JSON object (whitespace around it and a UTF-8
//! byte order mark are tolerated); anything else, cut short or nested deeper than `serde_json`'s
//! recursion limit (128) is `None`, never a panic.
//!
//! Values are interpreted from their raw text by [`string`] and [`number`], so that a number
//! `serde_json` would refuse to read as an `f64` (`1e999`) is a member that says nothing usable,
//! not a document that cannot be read.

use std::{borrow::Cow, fmt};

use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Calls `each(index, value)` for every top-level member of the JSON object in `bytes` whose key
/// is `names[index]`, in document order (so the last occurrence of a member is seen last).
/// `None` when `bytes` is not one complete JSON object.
pub(crate) fn members<'de>(
    bytes: &'de [u8],
    names: &'static [&'static str],
    each: impl FnMut(usize, &'de RawValue),
) -> Option<()> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(Members { names, each }).ok()?;
    de.end().ok()
}

/// A string value, its escapes decoded (borrowed when it has none); `None` for other values.
pub(crate) fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(text) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// A number value as a finite `f64`; `None` for other values and for numbers out of range.
pub(crate) fn number(raw: &RawValue) -> Option<f64> {
    let text = raw.get();
    // The document was read by serde_json, so a value starting so is a number in JSON's grammar
    // (which `f64::from_str` reads, as it reads `inf` and `NaN` that JSON has not).
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Whether the value is an object (to be read with [`members`]).
pub(crate) fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// A non-negative count that fits a `u32` (larger counts saturate), or `None` for anything else.
pub(crate) fn count(raw: &RawValue) -> Option<u32> {
    let n = number(raw)?;
    (n >= 0.0).then(|| n.min(f64::from(u32::MAX)) as u32)
}

struct Members<F> {
    names: &'static [&'static str],
    each: F,
}

impl<'de, F: FnMut(usize, &'de RawValue)> Visitor<'de> for Members<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(index) = map.next_key_seed(Key(self.names))? {
            match index {
                Some(index) => (self.each)(index, map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, read as its index in a list of names (no allocation, escapes or not).
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Option<usize>, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string members named `a`, `b`, `k`, in document order.
    fn fields(text: &str) -> Option<Vec<(usize, String)>> {
        let mut out = Vec::new();
        members(text.as_bytes(), &["a", "b", "k"], |i, raw| {
            if let Some(s) = string(raw) {
                out.push((i, s.into_owned()));
            }
        })?;
        Some(out)
    }

    #[test]
    fn reads_string_members_and_skips_everything_else() {
        let text = r#" { "a" : [1, {"x": "}"}, "]"], "b":"v\"\\\/\n\u00e9\ud83d\ude00",
            "c": {"d": {"e": []}}, "n": -1.5e3, "t": true, "z": null, "k": "w" } "#;
        let got = fields(text).unwrap();
        assert_eq!(
            got,
            [
                (1, "v\"\\/\n\u{e9}\u{1F600}".to_owned()),
                (2, "w".to_owned())
            ]
        );
        assert_eq!(fields("{}").unwrap(), []);
        assert_eq!(fields("\u{feff}{\"a\":\"b\"}").unwrap().len(), 1);
        assert_eq!(fields(r#"{"\u0061":"escaped key"}"#).unwrap().len(), 1);
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        for bad in [
            "",
            "[]",
            "\"s\"",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":\"b\"",
            "{\"a\":\"b\",}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":[1,2}",
            "{\"a\":{\"b\":1]]}",
            "{\"x\":tru,\"a\":\"b\"}",
            "{\"a\":\"b\"} trailing",
        ] {
            assert_eq!(fields(bad), None, "{bad:?}");
        }
        // Skipped and raw values are scanned without recursion: deep nesting is no stack risk.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(fields(&deep), Some(vec![]));
    }

    #[test]
    fn numbers_are_json_numbers_and_finite() {
        let number = |t: &str| {
            let mut got = None;
            members(format!("{{\"n\":{t}}}").as_bytes(), &["n"], |_, raw| {
                got = number(raw)
            })
            .map(|()| got)
        };
        assert_eq!(number(" 42"), Some(Some(42.0)));
        assert_eq!(number("-0.5e1"), Some(Some(-5.0)));
        assert_eq!(number("1e999"), Some(None), "out of range: no number");
        assert_eq!(number("\"1\""), Some(None));
        assert_eq!(number("null"), Some(None));
        for bad in ["", "+1", "NaN", "inf", "--1", "."] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn never_panics_on_prefixes_or_noise() {
        let text = r#"{"state":"JOB_STATE_RUNNING","progress":{"percent":12.5},"x":["\u00e9",{"y":"\ud83d\ude00"}]}"#;
        for end in 0..=text.len() {
            let _ = fields(&text[..end]);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"{}[]\":,\\u0123456789abcdefABCDEF .-+eE \n\xff\xc3\xa9";
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let _ = members(&bytes, &["a"], |_, raw| {
                let _ = (string(raw), number(raw), count(raw));
            });
        }
    }
}
