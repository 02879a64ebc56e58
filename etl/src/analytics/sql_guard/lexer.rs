//! ClickHouse's own reading of the text the guard sends, for the parts where lexers disagree:
//! where string literals and quoted names begin and end, and what counts as a comment.
//!
//! Follows ClickHouse's lexer (the same on 18.16 and 26.x for what the guard writes): a quote
//! opens a string (`'`) or a name (`` ` ``, `"`) that runs to the next unescaped quote of the
//! same kind, a backslash escapes the next character, and a doubled quote stands for one.
//! Strict where the guard's renderer never writes something: an escape other than `\\` or
//! `\'`, a backslash or doubled quote in a name, and anything that starts a comment, a heredoc,
//! a query parameter or a second statement (`--`, `/*`, `#`, `$`, `{`, `;`) is an error.

/// The values of the text's string literals, in order, as ClickHouse decodes them.
pub(super) fn string_literals(text: &str) -> Result<Vec<String>, String> {
    let mut literals = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("an unterminated string".into()),
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('\\' | '\'')) => value.push(escaped),
                            other => return Err(format!("the escape \\{}", other.unwrap_or(' '))),
                        },
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => value.push(other),
                    }
                }
                literals.push(value);
            }
            '`' | '"' => loop {
                match chars.next() {
                    None => return Err("an unterminated quoted name".into()),
                    Some('\\') => return Err("a backslash in a quoted name".into()),
                    Some(quote) if quote == c => {
                        if chars.peek() == Some(&c) {
                            return Err("a doubled quote in a quoted name".into());
                        }
                        break;
                    }
                    Some(_) => {}
                }
            },
            '-' if chars.peek() == Some(&'-') => return Err("a comment (--)".into()),
            '/' if chars.peek() == Some(&'*') => return Err("a comment (/*)".into()),
            '#' | '$' | '{' | '}' | ';' | '\\' => {
                return Err(format!("the character {c:?} outside a string"));
            }
            _ => {}
        }
    }
    Ok(literals)
}

#[cfg(test)]
mod tests {
    use super::string_literals;

    #[test]
    fn reads_strings_as_clickhouse_does() {
        assert_eq!(
            string_literals(r"SELECT 'x\\' AS a, 'it''s', 'a\'b', `col`").unwrap(),
            vec![r"x\".to_string(), "it's".into(), "a'b".into()]
        );
        // The attack's text as sqlparser prints it: ClickHouse reads one long string, then a
        // comment, which is an error here.
        assert!(string_literals(r"SELECT 'x\' AS a, ' AS b FROM traces --' AS c FROM scores").is_err());
    }

    #[test]
    fn refuses_what_the_renderer_never_writes() {
        for text in [
            "SELECT 1 -- c",
            "SELECT 1 /* c */",
            "SELECT 1 # c",
            "SELECT $$x$$",
            "SELECT {p:String}",
            "SELECT 1; SELECT 2",
            r"SELECT '\n'",
            r"SELECT `a\`b`",
            "SELECT `a``b`",
            "SELECT 'open",
        ] {
            assert!(string_literals(text).is_err(), "{text}");
        }
        // Inside a string, comment starters are text.
        assert_eq!(
            string_literals("SELECT '-- /* # $ ; {'").unwrap(),
            vec!["-- /* # $ ; {"]
        );
    }
}
