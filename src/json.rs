//! Just enough JSON reading to find a few fields in a document — a job's status, a chat
//! request's model and limits, a response's `usage` — without a JSON library (the crate's core
//! has none, and these few fields do not need a parse of the whole document).
//!
//! Total over any input: it never panics, never recurses, never allocates more than the strings
//! it returns, and answers `None` for anything it cannot read. It does not validate the parts of
//! a document it skips: it only needs to find where they end.

use std::borrow::Cow;

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        // A UTF-8 byte order mark is tolerated, as most JSON readers do.
        let start = if bytes.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        Cursor { bytes, pos: start }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after whitespace) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether the next value (after whitespace) starts with `byte`, without consuming it.
    pub(crate) fn at(&mut self, byte: u8) -> bool {
        self.skip_ws();
        self.peek() == Some(byte)
    }

    /// Calls `field(key, cursor)` for every member of the object that comes next; `field` must
    /// consume the value (or leave it for [`skip_value`](Self::skip_value) by returning
    /// `Ok(false)`). `None` if no complete object comes next.
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&str, &mut Self) -> Option<bool>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            if !field(&key, self)? {
                self.skip_value()?;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    /// Reads a string value (after whitespace), decoding escapes.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        // Fast path: no escapes, borrow.
        loop {
            match self.bump()? {
                b'"' => {
                    let raw = self.bytes.get(start..self.pos - 1)?;
                    return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
                }
                b'\\' => break,
                byte if byte < 0x20 => return None,
                _ => {}
            }
        }
        let mut out = String::from_utf8(self.bytes.get(start..self.pos - 1)?.to_vec()).ok()?;
        self.pos -= 1;
        loop {
            let run_start = self.pos;
            loop {
                match self.peek()? {
                    b'"' | b'\\' => break,
                    byte if byte < 0x20 => return None,
                    _ => self.pos += 1,
                }
            }
            out.push_str(std::str::from_utf8(self.bytes.get(run_start..self.pos)?).ok()?);
            if self.bump()? == b'"' {
                return Some(Cow::Owned(out));
            }
            let decoded = match self.bump()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return None,
            };
            out.push(decoded);
        }
    }

    /// The rest of a `\uXXXX` escape (and its low surrogate, if it is a high one).
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            if self.bump()? != b'\\' || self.bump()? != b'u' {
                return None;
            }
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return None;
            }
            char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
        } else {
            char::from_u32(first)
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        digits.iter().try_fold(0u32, |acc, &d| {
            let value = (d as char).to_digit(16)?;
            Some(acc * 16 + value)
        })
    }

    /// Reads a number value (after whitespace): a finite `f64` written in JSON's grammar. On
    /// `None` nothing is consumed, so the value can still be skipped.
    pub(crate) fn number(&mut self) -> Option<f64> {
        self.skip_ws();
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let number = self
            .bytes
            .get(start..self.pos)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            // `f64::from_str` also takes `inf`, `NaN` and a leading `+`; JSON does not, and the
            // loop above never lets letters other than `e` through.
            .filter(|text| !text.is_empty() && !text.starts_with('+'))
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|n| n.is_finite());
        if number.is_none() {
            self.pos = start;
        }
        number
    }

    /// Skips the value that comes next (after whitespace), whatever it is.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                // Count brackets, stepping over strings: no recursion, so no depth limit needed.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                // A number, `true`, `false` or `null`: up to the next delimiter.
                let start = self.pos;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        Cursor::new(text.as_bytes()).object(|key, cursor| {
            if cursor.at(b'"') {
                out.push((key.to_owned(), cursor.string()?.into_owned()));
                Some(true)
            } else {
                Some(false)
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
                ("b".to_owned(), "v\"\\/\n\u{e9}\u{1F600}".to_owned()),
                ("k".to_owned(), "w".to_owned())
            ]
        );
        assert_eq!(fields("{}").unwrap(), []);
        assert_eq!(fields("\u{feff}{\"a\":\"b\"}").unwrap().len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
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
            "{\"a\":\"\\ud83d\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":[1,2}",
            "{\"a\":{\"b\":1]]}",
        ] {
            assert_eq!(fields(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_json_numbers_and_finite() {
        let number = |t: &str| Cursor::new(t.as_bytes()).number();
        assert_eq!(number(" 42"), Some(42.0));
        assert_eq!(number("-0.5e1"), Some(-5.0));
        for bad in ["", "+1", "NaN", "inf", "1e999", "--1", "."] {
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
            let mut cursor = Cursor::new(&bytes);
            let _ = cursor.object(|_, c| c.skip_value().map(|()| true));
        }
    }
}
