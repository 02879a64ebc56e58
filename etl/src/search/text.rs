//! Full-text search tokenization, shared by ingest (building postings) and queries (looking them
//! up, verifying candidates, cutting snippets), for every language and for code.
//!
//! - [`normalize`]: per-char NFKC, lowercase, Arabic diacritics and tatweel dropped, whitespace
//!   runs collapsed, with a map back to the original for highlighting.
//! - [`terms`]: what ingest indexes; [`atoms`]: what a query looks up (each atom of a query must be
//!   a term of a matching document; `atoms(t) ⊆ terms(t)` for every text).
//!   Scripts written without spaces (Han, kana, Hangul, Thai, Lao, Khmer, Myanmar) give overlapping
//!   bigrams; other words and identifiers (`snake_case`, `camelCase`, `src/lib.rs:42`,
//!   `std::io`) give their atoms plus the compound forms.
//! - [`searchable_text`]: the string and number values of a stored JSON value.
//! - [`contains_phrase`], [`original_range`], [`term_ranges`], [`snippet`]: verification and
//!   display.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::ControlFlow::{self, Break, Continue};

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// The longest term, in bytes. A joiner-free piece of an identifier longer than this (base64,
/// hex dumps, minified code) gives no terms at all: its atoms would be noise. A compound longer
/// than this is not emitted, its atoms are.
pub const MAX_TERM_BYTES: usize = 128;

/// At most this many ranges from [`term_ranges`]: enough for a snippet.
const MAX_HIGHLIGHTS: usize = 32;

/// Text as the index sees it, with the way back to the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub text: String,
    /// One entry per *byte* of `text`: the byte offset in the original of the char that produced
    /// it, so a byte range found in `text` indexes it directly (see [`original_range`]).
    pub offsets: Vec<usize>,
}

/// Normalizes each char of `original` on its own (NFKC, then lowercase), drops Arabic diacritics
/// (U+064B–U+065F, U+0670) and tatweel (U+0640), and turns each whitespace run into one ASCII
/// space (kept at the ends too). Per char rather than per string, so a text's normalization is
/// the concatenation of its parts' and a substring's normalization is found in the whole's.
pub fn normalize(original: &str) -> Normalized {
    let mut text = String::with_capacity(original.len());
    let mut offsets = Vec::with_capacity(original.len());
    let mut space = false;
    for (at, c) in original.char_indices() {
        fold(c, |l, _| {
            let l = if l.is_whitespace() {
                if space {
                    return;
                }
                ' '
            } else {
                l
            };
            space = l == ' ';
            text.push(l);
            offsets.extend(std::iter::repeat_n(at, l.len_utf8()));
        });
    }
    Normalized { text, offsets }
}

/// Calls `out` with every term of `text` (duplicates included): the atoms and bigrams of
/// [`atoms`], plus each multi-atom joiner-free segment (`getUserName` → `getusername`) and each
/// identifier run that contains joiners (`src/billing.rs:42`), when at most [`MAX_TERM_BYTES`].
///
/// An identifier run is a maximal sequence of word chars (letters, digits, combining marks) and
/// joiners (`_ . - / \ :`), joiners trimmed at its ends. Its atoms are its joiner-free pieces,
/// split where the original case goes lower → upper (`getUser`) or upper → upper + lower
/// (`HTTPServer`), never between letters and digits (`utf8`, `sha256`).
pub fn terms(text: &str, mut out: impl FnMut(&str)) {
    tokenize(text, true, |term, _, _| {
        out(term);
        Continue(())
    });
}

/// What a query looks up: the lowercased atoms of its identifier runs and the bigrams (a lone
/// char: the unigram) of its runs of bigram scripts, in text order, duplicates removed.
pub fn atoms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut atoms = Vec::new();
    tokenize(text, false, |atom, _, _| {
        if !seen.contains(atom) {
            seen.insert(atom.to_owned());
            atoms.push(atom.to_owned());
        }
        Continue(())
    });
    atoms
}

/// The byte ranges in `original` of the given atoms' occurrences as [`atoms`] finds them (`user`
/// highlights `User` in `getUserName`), the first 32 in text order.
pub fn term_ranges(original: &str, atoms: &[String]) -> Vec<(usize, usize)> {
    let wanted: HashSet<&str> = atoms.iter().map(String::as_str).collect();
    let mut ranges = Vec::new();
    if wanted.is_empty() {
        return ranges;
    }
    tokenize(original, false, |atom, start, end| {
        if wanted.contains(atom) {
            ranges.push((start, end));
            if ranges.len() == MAX_HIGHLIGHTS {
                return Break(());
            }
        }
        Continue(())
    });
    ranges
}

/// The text a person would search in a stored JSON value: its string and number values (not
/// object keys, booleans or nulls) unescaped and joined by `"\n"`, empty strings skipped.
/// Borrowed when there is a single value without escapes (a plain string); `stored` unchanged
/// when it is not valid JSON.
pub fn searchable_text(stored: &str) -> Cow<'_, str> {
    let mut leaves = Leaves {
        first: "",
        out: None,
        capacity: stored.len(),
    };
    let mut json = Json { text: stored, at: 0 };
    match json.scan(&mut leaves) {
        Some(()) => match leaves.out {
            Some(out) => Cow::Owned(out),
            None => Cow::Borrowed(leaves.first),
        },
        None => Cow::Borrowed(stored),
    }
}

/// The byte range in `haystack.text` of the first occurrence of `needle_normalized` (the output
/// of [`normalize`], trimmed here). An empty needle matches nothing.
pub fn contains_phrase(haystack: &Normalized, needle_normalized: &str) -> Option<(usize, usize)> {
    let needle = needle_normalized.trim();
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack.text.as_bytes(), needle.as_bytes()).map(|at| (at, at + needle.len()))
}

/// Maps the byte range `start..end` of `n.text` to the range of `original` (the text `n` was
/// made from) that produced it: whole original chars, with the diacritics dropped after the last
/// one.
pub fn original_range(n: &Normalized, start: usize, end: usize, original: &str) -> (usize, usize) {
    let at = |i: usize| {
        n.offsets
            .get(i)
            .map_or(original.len(), |&o| o.min(original.len()))
    };
    let from = at(start);
    if end <= start {
        return (from, from);
    }
    let mut to = at(end);
    if end < n.offsets.len() && n.offsets[end - 1] == to {
        // The range ends inside one original char's expansion ("ﬁ" → "fi"): take the char whole.
        to += original
            .get(to..)
            .and_then(|rest| rest.chars().next())
            .map_or(0, char::len_utf8);
    }
    (from, to.max(from))
}

/// A window of a text around a match, with the matches in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    /// Byte ranges in `text`, sorted, disjoint.
    pub highlights: Vec<(usize, usize)>,
}

/// About `max_chars` chars of `original` around the earliest of `ranges` (byte ranges of
/// `original`), cut after whitespace where it is near, `…` where cut, whitespace runs as one
/// space so the snippet is one line. Without ranges, the text's beginning.
pub fn snippet(original: &str, ranges: &[(usize, usize)], max_chars: usize) -> Snippet {
    let mut marks: Vec<(usize, usize)> = ranges
        .iter()
        .map(|&(s, e)| (floor_boundary(original, s), ceil_boundary(original, e)))
        .filter(|(s, e)| s < e)
        .collect();
    marks.sort_unstable();
    marks.dedup_by(|next, prev| {
        let overlaps = next.0 <= prev.1;
        if overlaps {
            prev.1 = prev.1.max(next.1);
        }
        overlaps
    });
    let (match_start, match_end) = marks.first().copied().unwrap_or((0, 0));

    // Context split evenly around the match, what one side lacks going to the other.
    let spare = max_chars.saturating_sub(original[match_start..match_end].chars().count());
    let before_available = original[..match_start].chars().rev().take(spare).count();
    let after_available = original[match_end..].chars().take(spare).count();
    let before = before_available.min((spare / 2).max(spare - after_available));
    let mut start = match before.checked_sub(1) {
        Some(n) => original[..match_start]
            .char_indices()
            .rev()
            .nth(n)
            .map_or(0, |(i, _)| i),
        None => match_start,
    };
    let mut end = original[start..]
        .char_indices()
        .nth(max_chars)
        .map_or(original.len(), |(i, _)| start + i);
    if start > 0
        && let Some((i, c)) = original[start..match_start]
            .char_indices()
            .take(before / 2 + 1)
            .find(|(_, c)| c.is_whitespace())
    {
        start += i + c.len_utf8();
    }
    if end < original.len() && end > match_end {
        let after = original[match_end..end].chars().count();
        if let Some((i, _)) = original[match_end..end]
            .char_indices()
            .rev()
            .take(after / 2 + 1)
            .find(|(_, c)| c.is_whitespace())
        {
            end = match_end + i;
        }
    }

    let mut text = String::with_capacity(end - start + 2 * '…'.len_utf8());
    if start > 0 {
        text.push('…');
    }
    let mut highlights = Vec::new();
    let (mut next, mut open) = (0, None);
    let (mut wrote, mut space) = (false, false);
    for (i, c) in original[start..end].char_indices() {
        let i = start + i;
        if c.is_whitespace() {
            space = wrote;
            continue;
        }
        while next < marks.len() && marks[next].1 <= i {
            if let Some(s) = open.take() {
                highlights.push((s, text.len()));
            }
            next += 1;
        }
        if space {
            text.push(' ');
            space = false;
        }
        if open.is_none() && next < marks.len() && marks[next].0 <= i {
            open = Some(text.len());
        }
        text.push(c);
        wrote = true;
    }
    if let Some(s) = open {
        highlights.push((s, text.len()));
    }
    if end < original.len() {
        text.push('…');
    }
    Snippet { text, highlights }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Lower,
    Other,
}

fn case_of(c: char) -> Case {
    if c.is_uppercase() {
        Case::Upper
    } else if c.is_lowercase() {
        Case::Lower
    } else {
        Case::Other
    }
}

/// Feeds `emit` the normalized chars of one original char, each with the case of the NFKC char
/// it came from (the lowercase forms have lost it; camelCase splitting needs it).
#[inline]
fn fold(c: char, mut emit: impl FnMut(char, Case)) {
    if c.is_ascii() {
        emit(c.to_ascii_lowercase(), case_of(c));
    } else if is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
        fold_nfkc(c, &mut emit);
    } else {
        std::iter::once(c).nfkc().for_each(|d| fold_nfkc(d, &mut emit));
    }
}

fn fold_nfkc(d: char, emit: &mut impl FnMut(char, Case)) {
    let case = case_of(d);
    for l in d.to_lowercase() {
        // Harakat are optional in Arabic writing, tatweel is only stretching.
        if !matches!(l, '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}') {
            emit(l, case);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Bigram,
    Word,
    Mark,
    Joiner,
    Separator,
}

fn classify(c: char) -> Class {
    if c.is_ascii() {
        if c.is_ascii_alphanumeric() {
            Class::Word
        } else if is_joiner(c) {
            Class::Joiner
        } else {
            Class::Separator
        }
    } else if is_combining_mark(c) {
        if is_bigram_script(c) {
            Class::Bigram
        } else {
            Class::Mark
        }
    } else if c.is_alphanumeric() {
        if is_bigram_script(c) {
            Class::Bigram
        } else {
            Class::Word
        }
    } else {
        // Including the punctuation of the bigram scripts' blocks (・, ฿, ๏).
        Class::Separator
    }
}

/// Scripts written without spaces between words.
fn is_bigram_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1100..=0x11FF // Hangul Jamo
        | 0x1780..=0x17FF // Khmer
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3130..=0x318F // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F // Han
        | 0xAC00..=0xD7AF // Hangul Syllables
    )
}

/// Emits each token with its original byte range; `emit` stops the scan with `Break`.
fn tokenize(text: &str, compounds: bool, emit: impl FnMut(&str, usize, usize) -> ControlFlow<()>) {
    tokenize_with(text, compounds, true, emit);
}

fn tokenize_with(
    text: &str,
    compounds: bool,
    ascii_words: bool,
    emit: impl FnMut(&str, usize, usize) -> ControlFlow<()>,
) {
    let mut tokenizer = Tokenizer {
        emit,
        compounds,
        ascii_words,
        buf: String::new(),
        piece: Vec::new(),
        atom_starts: Vec::new(),
        cases: (Case::Other, Case::Other, 0),
        run_start: 0,
        word_end: 0,
        word_original_end: 0,
        has_joiner: false,
        after_joiner: false,
        bigram: None,
        paired: false,
    };
    let _ = tokenizer.run(text);
}

struct Tokenizer<F> {
    emit: F,
    compounds: bool,
    /// Whether plain ASCII words take [`plain_ascii_word`]'s shortcut (off only in the test that
    /// checks the shortcut against the char-by-char path).
    ascii_words: bool,
    /// The current identifier run, lowercased, with its joiners; between bigrams, empty.
    buf: String,
    /// The word chars of the run's current joiner-free piece: (offset in `buf`, original range).
    piece: Vec<(usize, usize, usize)>,
    /// Indices into `piece` where its atoms start.
    atom_starts: Vec<usize>,
    /// The cases of the piece's last two chars that are not marks, and the index of the last.
    cases: (Case, Case, usize),
    /// The original offset where the run starts.
    run_start: usize,
    /// The length of `buf` up to its last word char (trailing joiners are not part of the run),
    /// and that char's original end.
    word_end: usize,
    word_original_end: usize,
    has_joiner: bool,
    after_joiner: bool,
    /// The last char of the current bigram run, with its original range.
    bigram: Option<(char, usize, usize)>,
    /// Whether the current bigram run has given a bigram (else its lone char is a unigram).
    paired: bool,
}

impl<F: FnMut(&str, usize, usize) -> ControlFlow<()>> Tokenizer<F> {
    fn run(&mut self, text: &str) -> ControlFlow<()> {
        let bytes = text.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            // Between runs, most text is plain ASCII words and spaces: those are handled a word
            // at a time, with the result the char-by-char path below would give.
            if self.ascii_words && self.buf.is_empty() && self.bigram.is_none() {
                match plain_ascii_word(bytes, start) {
                    Ascii::Separator => {
                        start += 1;
                        continue;
                    }
                    Ascii::Word(end) => {
                        if end - start <= MAX_TERM_BYTES {
                            self.buf
                                .extend(bytes[start..end].iter().map(|b| b.to_ascii_lowercase() as char));
                            (self.emit)(&self.buf, start, end)?;
                            self.buf.clear();
                        }
                        start = end;
                        continue;
                    }
                    Ascii::Other => {}
                }
            }
            let Some(c) = text[start..].chars().next() else {
                break;
            };
            let end = start + c.len_utf8();
            let mut flow = Continue(());
            fold(c, |l, case| {
                if flow.is_continue() {
                    flow = self.push(l, case, start, end);
                }
            });
            flow?;
            start = end;
        }
        self.end_bigrams()?;
        self.end_run()
    }

    fn push(&mut self, c: char, case: Case, start: usize, end: usize) -> ControlFlow<()> {
        match classify(c) {
            Class::Bigram => {
                self.end_run()?;
                if let Some((prev, prev_start, _)) = self.bigram {
                    self.buf.push(prev);
                    self.buf.push(c);
                    (self.emit)(&self.buf, prev_start, end)?;
                    self.buf.clear();
                    self.paired = true;
                }
                self.bigram = Some((c, start, end));
            }
            // Variation selectors (葛󠄀) stay with their base char instead of splitting the run.
            Class::Mark if self.bigram.is_some() => {}
            Class::Mark if !self.piece.is_empty() => self.push_word(c, None, start, end),
            Class::Word => {
                self.end_bigrams()?;
                self.push_word(c, Some(case), start, end);
            }
            Class::Joiner if !self.buf.is_empty() => {
                self.end_piece()?;
                self.buf.push(c);
                self.after_joiner = true;
            }
            // A mark or joiner starting a run ("-x", "❤️") separates like punctuation.
            Class::Mark | Class::Joiner | Class::Separator => {
                self.end_bigrams()?;
                self.end_run()?;
            }
        }
        Continue(())
    }

    /// Appends a word char; `case` is None for a combining mark, which never splits an atom.
    fn push_word(&mut self, c: char, case: Option<Case>, start: usize, end: usize) {
        if self.buf.is_empty() {
            self.run_start = start;
        }
        if self.after_joiner {
            self.has_joiner = true;
            self.after_joiner = false;
        }
        let index = self.piece.len();
        if index == 0 {
            self.atom_starts.push(0);
            self.cases = (Case::Other, Case::Other, 0);
        }
        if let Some(case) = case {
            let (before_last, last, last_index) = self.cases;
            if last == Case::Lower && case == Case::Upper {
                self.atom_starts.push(index);
            } else if before_last == Case::Upper && last == Case::Upper && case == Case::Lower {
                self.atom_starts.push(last_index);
            }
            self.cases = (last, case, index);
        }
        self.piece.push((self.buf.len(), start, end));
        self.buf.push(c);
        self.word_end = self.buf.len();
        self.word_original_end = end;
    }

    fn end_piece(&mut self) -> ControlFlow<()> {
        let (Some(&(first, original_start, _)), Some(&(_, _, original_end))) =
            (self.piece.first(), self.piece.last())
        else {
            return Continue(());
        };
        let piece_end = self.buf.len();
        if piece_end - first <= MAX_TERM_BYTES {
            for (k, &a) in self.atom_starts.iter().enumerate() {
                let b = self.atom_starts.get(k + 1).copied().unwrap_or(self.piece.len());
                let to = self.piece.get(b).map_or(piece_end, |&(offset, _, _)| offset);
                (self.emit)(
                    &self.buf[self.piece[a].0..to],
                    self.piece[a].1,
                    self.piece[b - 1].2,
                )?;
            }
            if self.compounds && self.atom_starts.len() > 1 {
                (self.emit)(&self.buf[first..piece_end], original_start, original_end)?;
            }
        }
        self.piece.clear();
        self.atom_starts.clear();
        Continue(())
    }

    fn end_run(&mut self) -> ControlFlow<()> {
        if self.buf.is_empty() {
            return Continue(());
        }
        self.end_piece()?;
        self.buf.truncate(self.word_end);
        if self.compounds && self.has_joiner && self.buf.len() <= MAX_TERM_BYTES {
            (self.emit)(&self.buf, self.run_start, self.word_original_end)?;
        }
        self.buf.clear();
        self.has_joiner = false;
        self.after_joiner = false;
        Continue(())
    }

    fn end_bigrams(&mut self) -> ControlFlow<()> {
        if let Some((c, start, end)) = self.bigram.take()
            && !std::mem::take(&mut self.paired)
        {
            self.buf.push(c);
            (self.emit)(&self.buf, start, end)?;
            self.buf.clear();
        }
        Continue(())
    }
}

/// What starts at a byte of a text, for the tokenizer between runs.
enum Ascii {
    /// An ASCII char that is not a letter or digit: between runs, it ends nothing.
    Separator,
    /// A plain word ending at this offset: ASCII letters and digits that are one atom (no
    /// camelCase split), then perhaps joiners (`end.`), then a separator or the text's end.
    Word(usize),
    /// Anything else (non-ASCII, identifiers, camelCase): the char-by-char path.
    Other,
}

fn plain_ascii_word(bytes: &[u8], start: usize) -> Ascii {
    let first = bytes[start];
    if !first.is_ascii_alphanumeric() {
        return if first.is_ascii() {
            Ascii::Separator
        } else {
            Ascii::Other
        };
    }
    let ascii_case = |b: u8| match b {
        b'A'..=b'Z' => Case::Upper,
        b'a'..=b'z' => Case::Lower,
        _ => Case::Other,
    };
    let (mut before_last, mut last) = (Case::Other, Case::Other);
    let mut end = start;
    while let Some(&b) = bytes.get(end).filter(|b| b.is_ascii_alphanumeric()) {
        let case = ascii_case(b);
        // The splits `Tokenizer::push_word` makes: lower → upper, upper + upper → lower.
        if (last == Case::Lower && case == Case::Upper)
            || (before_last == Case::Upper && last == Case::Upper && case == Case::Lower)
        {
            return Ascii::Other;
        }
        (before_last, last) = (last, case);
        end += 1;
    }
    let mut after = end;
    while bytes.get(after).is_some_and(|&b| is_joiner(b as char)) {
        after += 1;
    }
    match bytes.get(after) {
        None => Ascii::Word(end),
        Some(&b) if b.is_ascii() && !b.is_ascii_alphanumeric() => Ascii::Word(end),
        Some(_) => Ascii::Other,
    }
}

fn is_joiner(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '/' | '\\' | ':')
}

/// The values [`searchable_text`] collects: the first one borrowed until there is a second.
struct Leaves<'a> {
    first: &'a str,
    out: Option<String>,
    capacity: usize,
}

impl<'a> Leaves<'a> {
    fn push(&mut self, value: &'a str) {
        if value.is_empty() {
            return;
        }
        if self.out.is_none() && self.first.is_empty() {
            self.first = value;
        } else {
            self.next().push_str(value);
        }
    }

    fn push_escaped(&mut self, raw: &str) {
        unescape(raw, self.next());
    }

    /// The owned text, with the separator a new value needs.
    fn next(&mut self) -> &mut String {
        let (first, capacity) = (self.first, self.capacity);
        let out = self.out.get_or_insert_with(|| {
            let mut out = String::with_capacity(capacity);
            out.push_str(first);
            out
        });
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// A validating JSON scanner that hands the string and number values to [`Leaves`]: no tree, no
/// recursion (depth is a stack of expected closing brackets).
struct Json<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Json<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn scan(&mut self, leaves: &mut Leaves<'a>) -> Option<()> {
        let text = self.text;
        let mut closers = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    let close = if open == b'{' { b'}' } else { b']' };
                    self.skip_whitespace();
                    if self.peek() == Some(close) {
                        self.at += 1;
                    } else {
                        closers.push(close);
                        if close == b'}' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    let (start, end, escaped) = self.string()?;
                    if escaped {
                        leaves.push_escaped(&text[start..end]);
                    } else {
                        leaves.push(&text[start..end]);
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let start = self.at;
                    self.number()?;
                    leaves.push(&text[start..self.at]);
                }
                _ => self.literal()?,
            }
            // After a value: close what it ends, up to a comma or the end of the text.
            loop {
                self.skip_whitespace();
                let Some(&close) = closers.last() else {
                    return (self.at == text.len()).then_some(());
                };
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if close == b'}' {
                            self.key()?;
                        }
                        break;
                    }
                    byte if byte == close => {
                        self.at += 1;
                        closers.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn key(&mut self) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.expect(b':')
    }

    /// Skips the string at the opening quote: its content's range and whether it has escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some((start, self.at - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.at += match self.text.as_bytes().get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => {
                            hex4(self.text, self.at + 2)?;
                            6
                        }
                        _ => return None,
                    };
                }
                0..=0x1F => return None,
                _ => self.at += 1,
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn literal(&mut self) -> Option<()> {
        let rest = &self.text.as_bytes()[self.at..];
        let length = [&b"true"[..], b"false", b"null"]
            .into_iter()
            .find(|l| rest.starts_with(l))?
            .len();
        self.at += length;
        Some(())
    }
}

/// The four hex digits at `at` in `s`.
fn hex4(s: &str, at: usize) -> Option<u32> {
    let digits = s.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Appends the JSON string content `raw` unescaped; a lone surrogate becomes U+FFFD.
fn unescape(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let escape = &rest[backslash + 1..];
        let Some(kind) = escape.chars().next() else { return };
        let (c, length) = match kind {
            'b' => ('\u{8}', 1),
            'f' => ('\u{c}', 1),
            'n' => ('\n', 1),
            'r' => ('\r', 1),
            't' => ('\t', 1),
            'u' => unicode_escape(escape),
            other => (other, other.len_utf8()),
        };
        out.push(c);
        rest = escape.get(length..).unwrap_or_default();
    }
    out.push_str(rest);
}

/// The char of the `\u` escape that `escape` (after the backslash) starts with, a surrogate pair
/// taking two, and the escape's length.
fn unicode_escape(escape: &str) -> (char, usize) {
    let Some(unit) = hex4(escape, 1) else {
        return ('\u{FFFD}', 1);
    };
    if (0xD800..0xDC00).contains(&unit)
        && escape[5..].starts_with("\\u")
        && let Some(low @ 0xDC00..0xE000) = hex4(escape, 7)
    {
        let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
        return (c.unwrap_or('\u{FFFD}'), 11);
    }
    (char::from_u32(unit).unwrap_or('\u{FFFD}'), 5)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn term_set(text: &str) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        terms(text, |term| {
            set.insert(term.to_owned());
        });
        set
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn bigrams(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars.windows(2).map(|pair| pair.iter().collect()).collect()
    }

    #[test]
    fn english_is_case_folded() {
        assert_eq!(
            atoms("The QUICK brown Fox, the fox!"),
            ["the", "quick", "brown", "fox"]
        );
        assert_eq!(term_set("Hello World"), set(&["hello", "world"]));
        assert_eq!(normalize("Hello  World\t\n!").text, "hello world !");
    }

    #[test]
    fn full_width_and_compatibility_forms_fold() {
        let n = normalize("ＡＢＣ");
        assert_eq!(n.text, "abc");
        assert_eq!(n.offsets, [0, 3, 6]);
        assert_eq!(atoms("ＡＢＣ"), ["abc"]);
        assert_eq!(atoms("ﬁle Ⅻ"), ["file", "xii"]);
        assert_eq!(atoms("ｶﾀｶﾅ"), atoms("カタカナ"));
    }

    #[test]
    fn chinese_gives_overlapping_bigrams() {
        assert_eq!(atoms("我是中国人"), ["我是", "是中", "中国", "国人"]);
        assert_eq!(atoms("我"), ["我"]);
        assert_eq!(atoms("中国abc，北京"), ["中国", "abc", "北京"]);
        assert_eq!(term_set("我是中国人"), set(&["我是", "是中", "中国", "国人"]));
    }

    #[test]
    fn japanese_mixed_scripts_are_one_run() {
        assert_eq!(atoms("東京タワーに行く"), bigrams("東京タワーに行く"));
        // The katakana middle dot is punctuation, not part of a run.
        assert_eq!(atoms("ジョン・スミス"), ["ジョ", "ョン", "スミ", "ミス"]);
    }

    #[test]
    fn korean_word_stems_are_terms() {
        let terms = term_set("서울에서 만나요");
        assert!(terms.contains("서울"), "{terms:?}");
        assert_eq!(terms, set(&["서울", "울에", "에서", "만나", "나요"]));
        assert!(atoms("서울").iter().all(|a| terms.contains(a)));
    }

    #[test]
    fn arabic_harakat_and_tatweel_are_ignored() {
        assert_eq!(term_set("كِتَاب"), term_set("كتاب"));
        assert_eq!(term_set("كتـــاب"), set(&["كتاب"]));
        assert_eq!(normalize("كِتَاب").text, "كتاب");
        assert_eq!(atoms("قرأت الكتاب"), ["قرأت", "الكتاب"]);
    }

    #[test]
    fn hindi_words_keep_their_vowel_signs_and_virama() {
        assert_eq!(atoms("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
    }

    #[test]
    fn thai_gives_bigrams() {
        assert_eq!(atoms("สวัสดีครับ"), bigrams("สวัสดีครับ"));
        assert_eq!(atoms("ไทย ลาว"), [bigrams("ไทย"), bigrams("ลาว")].concat());
    }

    #[test]
    fn snake_case_and_camel_case() {
        assert_eq!(term_set("user_id"), set(&["user", "id", "user_id"]));
        assert_eq!(atoms("user_id"), ["user", "id"]);
        assert_eq!(
            term_set("getUserName"),
            set(&["get", "user", "name", "getusername"])
        );
        assert_eq!(atoms("getUserName"), ["get", "user", "name"]);
        assert_eq!(term_set("HTTPServer"), set(&["http", "server", "httpserver"]));
        assert_eq!(atoms("parseHTTPResponse"), ["parse", "http", "response"]);
        assert_eq!(
            atoms("utf8 v2 sha256 SHA256 IPv6"),
            ["utf8", "v2", "sha256", "i", "pv6"]
        );
        assert_eq!(atoms("ALLCAPS lower"), ["allcaps", "lower"]);
    }

    #[test]
    fn paths_and_dotted_names() {
        assert_eq!(atoms("src/billing.rs:42:5"), ["src", "billing", "rs", "42", "5"]);
        assert_eq!(
            term_set("src/billing.rs:42:5"),
            set(&["src", "billing", "rs", "42", "5", "src/billing.rs:42:5"])
        );
        assert_eq!(
            atoms("std::collections::HashMap"),
            ["std", "collections", "hash", "map"]
        );
        assert_eq!(
            term_set("std::collections::HashMap"),
            set(&[
                "std",
                "collections",
                "hash",
                "map",
                "hashmap",
                "std::collections::hashmap"
            ])
        );
        assert_eq!(
            term_set(r"C:\Users\me"),
            set(&["c", "users", "me", r"c:\users\me"])
        );
    }

    #[test]
    fn joiners_at_the_ends_of_a_run_are_trimmed() {
        assert_eq!(term_set("(see ./foo.)"), set(&["see", "foo"]));
        assert_eq!(term_set("--verbose a..b"), set(&["verbose", "a", "b", "a..b"]));
        assert_eq!(term_set("- . / :"), set(&[]));
    }

    #[test]
    fn emoji_and_punctuation_separate() {
        assert_eq!(
            atoms("hello👋world!!! ❤️ (x) a+b=c"),
            ["hello", "world", "x", "a", "b", "c"]
        );
        assert_eq!(term_set("❤️🎉"), set(&[]));
    }

    #[test]
    fn long_pieces_give_no_terms() {
        let base64: String = (0..200)
            .map(|i| ["aGVs", "bG8g", "V29y", "bGQ5"][i % 4])
            .collect();
        assert!(base64.len() > MAX_TERM_BYTES);
        assert_eq!(term_set(&base64), set(&[]));
        assert_eq!(atoms(&format!("key {base64} end")), ["key", "end"]);
        // A long path still gives its atoms, not the whole.
        let path = format!("{}file.rs", "dir/".repeat(40));
        assert_eq!(term_set(&path), set(&["dir", "file", "rs"]));
    }

    #[test]
    fn atom_ranges_point_into_the_original() {
        assert_eq!(term_ranges("getUserName", &["user".to_owned()]), [(3, 7)]);
        assert_eq!(term_ranges("我是中国人", &["中国".to_owned()]), [(6, 12)]);
        assert_eq!(term_ranges("ＡＢＣ abc", &["abc".to_owned()]), [(0, 9), (10, 13)]);
        assert_eq!(term_ranges("كِتَاب", &["كتاب".to_owned()]), [(0, "كِتَاب".len())]);
        assert_eq!(term_ranges("a b", &[]), []);
        let many = "word ".repeat(100);
        assert_eq!(term_ranges(&many, &["word".to_owned()]).len(), 32);
    }

    #[test]
    fn phrases_map_back_to_the_original() {
        let original = "Say  HELLO\tWorld now";
        let n = normalize(original);
        let needle = normalize(" hello world ").text;
        let (start, end) = contains_phrase(&n, &needle).unwrap();
        assert_eq!(&n.text[start..end], "hello world");
        assert_eq!(original_range(&n, start, end, original), (5, 16));
        assert_eq!(contains_phrase(&n, " "), None);
        assert_eq!(contains_phrase(&n, "goodbye"), None);

        // Diacritics after the match's last letter belong to it.
        let arabic = "كِتَابٌ جميل";
        let n = normalize(arabic);
        let (start, end) = contains_phrase(&n, "كتاب").unwrap();
        assert_eq!(original_range(&n, start, end, arabic), (0, "كِتَابٌ".len()));

        // A match inside one char's expansion takes the char whole.
        let ligature = "a ﬁle";
        let n = normalize(ligature);
        let (start, end) = contains_phrase(&n, "f").unwrap();
        assert_eq!(original_range(&n, start, end, ligature), (2, 5));
        let (start, end) = contains_phrase(&n, "ile").unwrap();
        assert_eq!(original_range(&n, start, end, ligature), (2, ligature.len()));
    }

    #[test]
    fn json_string_values_are_the_searchable_text() {
        assert!(matches!(
            searchable_text(r#""hello world""#),
            Cow::Borrowed("hello world")
        ));
        assert!(matches!(
            searchable_text(r#" {"k": "only"} "#),
            Cow::Borrowed("only")
        ));
        assert_eq!(
            searchable_text(r#""line\nnext \"q\" \\ \/ tab\t""#),
            "line\nnext \"q\" \\ / tab\t"
        );
        assert_eq!(
            searchable_text(r#""caf\u00e9 \ud83d\ude00 \ud800x""#),
            "café 😀 \u{FFFD}x"
        );
        let nested = r#"{"role":"user","content":[{"type":"text","text":"Hi"},{"n":42,"ok":true,
            "none":null,"f":-1.5e3,"empty":"","deep":[[["x"]]]}],"ключ":"значение"}"#;
        assert_eq!(searchable_text(nested), "user\ntext\nHi\n42\n-1.5e3\nx\nзначение");
        let keys = searchable_text(r#"{"secret_key":"v","other":{"inner_key":1}}"#);
        assert!(!keys.contains("key"), "{keys}");
        assert_eq!(searchable_text("[]"), "");
        assert_eq!(searchable_text("true"), "");
        assert_eq!(searchable_text("12"), "12");
        for invalid in [
            "hello world",
            "",
            r#"{"a":"#,
            "[1,]",
            r#""abc"#,
            "01",
            r#"{"a" "b"}"#,
            r#""bad \x escape""#,
            r#""\u12""#,
            "\"raw\nnewline\"",
            r#"["a"] x"#,
            "[1 2]",
            "{1:2}",
            "-",
            "1.",
            "nul",
        ] {
            assert_eq!(searchable_text(invalid), invalid);
        }
    }

    #[test]
    fn snippets_cut_around_the_first_match() {
        let text = format!(
            "{} needle here {}",
            "lead words ".repeat(30),
            "tail words ".repeat(30)
        );
        let at = text.find("needle").unwrap();
        let s = snippet(&text, &[(at, at + 6), (at + 2, at + 4)], 60);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'), "{}", s.text);
        assert!(s.text.chars().count() <= 62, "{}", s.text);
        assert_eq!(s.highlights.len(), 1);
        let (start, end) = s.highlights[0];
        assert_eq!(&s.text[start..end], "needle");
        // Cut after whitespace, not mid-word.
        assert!(
            s.text.starts_with("…lead") || s.text.starts_with("…words"),
            "{}",
            s.text
        );

        let short = snippet("a\n\n b  c", &[(7, 8)], 100);
        assert_eq!(short.text, "a b c");
        assert_eq!(short.highlights, [(4, 5)]);

        let cjk = "我是中国人".repeat(40);
        let s = snippet(&cjk, &[(6, 12), (9, 15), (1000, 1003)], 10);
        assert_eq!(s.text.chars().count(), 11);
        assert_eq!(s.highlights.len(), 1);
        let (start, end) = s.highlights[0];
        assert_eq!(&s.text[start..end], "中国人");

        let head = snippet(&text, &[], 20);
        assert!(head.text.starts_with("lead words") && head.text.ends_with('…'));
        assert!(head.highlights.is_empty());

        // A match longer than the window is cut.
        let long = "x".repeat(500);
        let s = snippet(&long, &[(10, 400)], 50);
        assert_eq!(s.text, format!("…{}…", "x".repeat(50)));
        assert_eq!(s.highlights, [(3, 53)]);
    }

    /// xorshift64*: reproducible without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    const ALPHABET: &[char] = &[
        'a',
        'Z',
        'q',
        'B',
        'e',
        'S',
        '0',
        '7',
        ' ',
        ' ',
        '\n',
        '\t',
        '_',
        '.',
        '/',
        ':',
        '-',
        '\\',
        '中',
        '国',
        '人',
        'あ',
        'カ',
        'ー',
        '・',
        '서',
        '울',
        'ك',
        'ت',
        '\u{650}',
        'ـ',
        'ह',
        'ि',
        '्',
        'ส',
        'ั',
        'é',
        '\u{301}',
        'Ａ',
        'ﬁ',
        'İ',
        '😀',
        '\u{FE0F}',
        '!',
        '"',
        'ß',
        'Σ',
        '\u{3000}',
        '\u{A0}',
        '\u{FE76}',
        '㍻',
        'ｶ',
        'ﾞ',
        '\u{E0100}',
        '㎒',
        'Ⅻ',
    ];

    #[test]
    fn random_texts_keep_the_invariants() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..600 {
            let length = rng.below(40);
            let text: String = (0..length).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();

            let all = term_set(&text);
            assert!(
                all.iter().all(|t| !t.is_empty() && t.len() <= MAX_TERM_BYTES),
                "{text:?}: {all:?}"
            );
            let query = atoms(&text);
            assert!(
                query.iter().all(|a| all.contains(a)),
                "{text:?}: {query:?} ⊄ {all:?}"
            );

            let n = normalize(&text);
            assert_eq!(n.offsets.len(), n.text.len());
            assert!(n.offsets.windows(2).all(|w| w[0] <= w[1]), "{text:?}");
            assert!(
                n.offsets
                    .iter()
                    .all(|&o| o < text.len() && text.is_char_boundary(o)),
                "{text:?}"
            );
            assert!(!n.text.contains("  "), "{text:?}");

            // Any substring's normalization is found in the whole's, and maps back to chars.
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let (a, b) = (bounds[rng.below(bounds.len())], bounds[rng.below(bounds.len())]);
            let needle = normalize(&text[a.min(b)..a.max(b)]).text;
            if !needle.trim().is_empty() {
                let (start, end) = contains_phrase(&n, &needle).expect("substring found");
                let (from, to) = original_range(&n, start, end, &text);
                assert!(
                    from < to && text.is_char_boundary(from) && text.is_char_boundary(to),
                    "{text:?}"
                );
            }

            let ranges = term_ranges(&text, &query);
            assert!(
                ranges
                    .iter()
                    .all(|&(s, e)| s < e && text.is_char_boundary(s) && text.is_char_boundary(e))
            );
            let s = snippet(&text, &ranges, 1 + rng.below(20));
            for &(start, end) in &s.highlights {
                assert!(start < end && s.text.is_char_boundary(start) && s.text.is_char_boundary(end));
            }
            assert!(
                s.highlights.windows(2).all(|w| w[0].1 < w[1].0),
                "{text:?}: {s:?}"
            );
        }
    }

    #[test]
    fn the_ascii_word_shortcut_gives_what_the_char_path_gives() {
        let long = "w".repeat(MAX_TERM_BYTES + 1);
        let pieces = [
            "a",
            "Z",
            "7",
            "getUser",
            "HTTPServer",
            "ABc",
            "x1Y",
            "end.",
            "end...",
            " ",
            ".",
            "-",
            "_",
            ":",
            "\\",
            "\n",
            "!",
            "é",
            "中",
            "\u{301}",
            "foo/bar",
            "ab",
            "CD",
            "ok-",
            long.as_str(),
        ];
        let mut rng = Rng(7);
        for _ in 0..3000 {
            let text: String = (0..rng.below(12))
                .map(|_| pieces[rng.below(pieces.len())])
                .collect();
            for compounds in [true, false] {
                let tokens = |ascii_words| {
                    let mut out = Vec::new();
                    tokenize_with(&text, compounds, ascii_words, |term, start, end| {
                        out.push((term.to_owned(), start, end));
                        Continue(())
                    });
                    out
                };
                assert_eq!(tokens(true), tokens(false), "{text:?}");
            }
        }
    }

    #[test]
    fn ascii_normalization_is_lowercase_with_whitespace_collapsed() {
        let mut rng = Rng(42);
        for _ in 0..300 {
            let text: String = (0..rng.below(30))
                .map(|_| (rng.below(128) as u8) as char)
                .collect();
            let expected = text
                .split(char::is_whitespace)
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .join(" ");
            let mut collapsed = String::new();
            for c in expected.chars() {
                if !(c == ' ' && collapsed.ends_with(' ')) {
                    collapsed.push(c);
                }
            }
            assert_eq!(normalize(&text).text, collapsed, "{text:?}");
        }
    }

    /// The string and number values of a serde_json tree, as `searchable_text` joins them.
    fn leaves(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if !s.is_empty() => out.push(s.clone()),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
            _ => {}
        }
    }

    fn random_json(rng: &mut Rng, depth: usize) -> serde_json::Value {
        const STRINGS: &[&str] = &[
            "",
            "a",
            "héllo",
            "\"q\"",
            "back\\slash",
            "tab\t\n",
            "\u{1}",
            "😀 中",
            "/",
        ];
        match rng.below(if depth > 3 { 4 } else { 6 }) {
            0 => serde_json::Value::from(STRINGS[rng.below(STRINGS.len())]),
            1 => serde_json::Value::from(rng.below(1000) as i64 - 500),
            2 => serde_json::Value::from(rng.below(2) == 0),
            3 => serde_json::Value::Null,
            4 => (0..rng.below(4)).map(|_| random_json(rng, depth + 1)).collect(),
            _ => serde_json::Value::Object(
                (0..rng.below(4))
                    .map(|i| {
                        (
                            format!("key{i}{}", STRINGS[rng.below(STRINGS.len())]),
                            random_json(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn searchable_text_agrees_with_serde_json() {
        let mut rng = Rng(7);
        for _ in 0..500 {
            let value = random_json(&mut rng, 0);
            let json = if rng.below(2) == 0 {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value).unwrap()
            };
            let mut expected = Vec::new();
            leaves(&value, &mut expected);
            assert_eq!(searchable_text(&json), expected.join("\n"), "{json}");

            // Damaged JSON is valid for both or for neither.
            let mut damaged = json.clone();
            let at = (0..=damaged.len())
                .filter(|&i| damaged.is_char_boundary(i))
                .nth(rng.below(damaged.len() + 1));
            let at = at.unwrap_or(damaged.len());
            if rng.below(2) == 0 && at < damaged.len() {
                damaged.remove(at);
            } else {
                damaged.insert(
                    at,
                    ['"', '\\', ',', ':', '{', '}', '[', ']', 'x', '1'][rng.below(10)],
                );
            }
            let valid = serde_json::from_str::<serde_json::Value>(&damaged).is_ok();
            let unchanged = matches!(searchable_text(&damaged), Cow::Borrowed(s) if s == damaged);
            assert!(valid || unchanged, "{damaged}");
        }
    }
}
