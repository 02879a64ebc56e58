//! Realistic searchable text for `bench read`, generated server-side: each generation's input
//! and output and each tool call's input are words of a vocabulary (English, invented words,
//! identifiers and paths, Chinese, Japanese, Korean, Arabic) picked with a Zipf-like skew, and
//! their search postings are the vocabulary entries' terms, made here by the ETL's own
//! tokenizer, so the index holds what ingest would have written for the same text.

use agenttrace_etl::search::text;

/// Common words first: the skew makes low ranks frequent.
const COMMON: [&str; 40] = [
    "the", "error", "test", "file", "failed", "function", "build", "config", "update", "fix", "run", "check",
    "value", "return", "module", "import", "request", "response", "timeout", "user", "database", "query",
    "cargo", "npm", "commit", "branch", "merge", "deploy", "cache", "token", "missing", "found", "line",
    "expected", "type", "string", "null", "panic", "thread", "warning",
];
const CJK: [&str; 16] = [
    "数据库连接失败",
    "请检查配置文件",
    "用户订单支付",
    "服务器超时",
    "测试用例通过",
    "東京タワー",
    "テストが失敗しました",
    "ファイルを保存",
    "設定を更新",
    "エラーが発生",
    "서울에서",
    "파일을 저장했습니다",
    "테스트 실패",
    "데이터베이스 연결",
    "주문 결제",
    "서버 시간 초과",
];
const ARABIC: [&str; 8] = [
    "كتاب",
    "مدرسة",
    "خطأ",
    "ملف",
    "اختبار",
    "قاعدة",
    "بيانات",
    "مستخدم",
];
const SYLLABLES: [&str; 20] = [
    "ka", "ro", "mi", "tu", "se", "la", "no", "vi", "pe", "du", "zo", "ri", "ga", "fe", "ho", "ju", "wa",
    "ne", "bo", "ci",
];

/// The vocabulary: each entry's text and the terms the tokenizer makes of it.
pub struct Vocabulary {
    pub entries: Vec<String>,
    pub terms: Vec<Vec<String>>,
}

impl Vocabulary {
    pub fn new() -> Self {
        let mut entries: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
        let invented: Vec<String> = SYLLABLES
            .iter()
            .flat_map(|a| {
                SYLLABLES
                    .iter()
                    .flat_map(move |b| SYLLABLES.iter().map(move |c| format!("{a}{b}{c}")))
            })
            .collect();
        // Interleaved so that every kind has frequent and rare members.
        for (i, word) in invented.iter().take(2000).enumerate() {
            entries.push(word.clone());
            match i % 25 {
                3 => entries.push(CJK[(i / 25) % CJK.len()].to_owned()),
                7 => entries.push(ARABIC[(i / 25) % ARABIC.len()].to_owned()),
                11 => entries.push(format!("{}_{}", invented[i + 1], invented[i + 2])),
                17 => entries.push(format!("src/{}/{}.rs", invented[i + 3], invented[i + 4])),
                21 => {
                    let capital = |w: &str| format!("{}{}", w[..1].to_uppercase(), &w[1..]);
                    entries.push(format!(
                        "{}{}Service",
                        capital(&invented[i + 5]),
                        capital(&invented[i + 6])
                    ));
                }
                _ => {}
            }
        }
        let terms = entries
            .iter()
            .map(|entry| {
                let mut terms = Vec::new();
                text::terms(entry, |term: &str| {
                    if !terms.iter().any(|t| t == term) {
                        terms.push(term.to_owned());
                    }
                });
                terms
            })
            .collect();
        Vocabulary { entries, terms }
    }

    /// SQL: the `values` (one per entry, quoted) of the entry at 1-based `index`. `transform`
    /// builds its table once per query; on 18.16, indexing the literal array by a column was
    /// 40× slower at 2,440 entries (a 100M fill would have taken hours).
    fn lookup(&self, index: &str, values: impl Iterator<Item = String>) -> String {
        let keys = array((1..=self.entries.len()).map(|k| k.to_string()));
        format!("transform({index}, {keys}, {}, '')", array(values))
    }

    /// SQL: the 1-based index of the entry a hash `h` picks, skewed to low ranks (rank ∝ u³
    /// for uniform u).
    fn pick(&self, h: &str) -> String {
        format!(
            "(toUInt32(floor({n} * pow(({h} % 1000003) / 1000003., 3))) + 1)",
            n = self.entries.len()
        )
    }

    /// SQL: the hashes of row `seed`'s `words` words (`salt` tells fields apart), computed
    /// outside any lambda: 18.16 loses a subquery's column that only a lambda names.
    fn hashes(seed: &str, salt: u32, words: u32) -> String {
        let hashes: Vec<String> = (0..words)
            .map(|k| format!("cityHash64({seed}, {})", salt * 100 + k))
            .collect();
        format!("[{}]", hashes.join(", "))
    }

    /// SQL: `words` entries of row `seed`'s text, as a JSON string.
    pub fn json_text(&self, seed: &str, salt: u32, words: u32) -> String {
        format!(
            "concat('\"', arrayStringConcat(arrayMap(h -> {entry}, {hashes}), ' '), '\"')",
            entry = self.lookup(&self.pick("h"), self.entries.iter().map(|e| quote(e))),
            hashes = Self::hashes(seed, salt, words),
        )
    }

    /// SQL: one row per term of the same text (repeated terms repeat; the index collapses them).
    /// An entry's terms are looked up joined by spaces, which no term holds.
    pub fn text_terms(&self, seed: &str, salt: u32, words: u32) -> String {
        let joined = self.terms.iter().map(|terms| quote(&terms.join(" ")));
        let picked = format!(
            "arrayJoin(arrayMap(h -> {}, {}))",
            self.pick("h"),
            Self::hashes(seed, salt, words)
        );
        format!(
            "arrayJoin(arrayFilter(t -> t != '', splitByChar(' ', {})))",
            self.lookup(&picked, joined)
        )
    }

    /// Entries by kind and frequency, for queries: (label, query).
    pub fn queries(&self) -> Vec<(&'static str, String)> {
        let find = |from: usize, keep: &dyn Fn(&str) -> bool| {
            self.entries[from..]
                .iter()
                .find(|e| keep(e))
                .cloned()
                .unwrap_or_default()
        };
        let plain = |e: &str| e.chars().all(|c| c.is_ascii_lowercase());
        vec![
            ("a common word", self.entries[4].clone()),
            ("a word of rank 300", find(300, &plain)),
            ("a rare word", find(self.entries.len() * 3 / 4, &plain)),
            ("a Chinese word", "连接".to_owned()),
            ("a Japanese word", "テスト".to_owned()),
            (
                "an identifier's part",
                find(500, &|e| e.ends_with("Service")).to_lowercase(),
            ),
        ]
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_the_tokenizers_terms_and_no_quotes() {
        let vocabulary = Vocabulary::new();
        assert!(vocabulary.entries.len() > 2000);
        assert!(vocabulary.entries.iter().all(|e| !e.contains(['"', '\\', '\''])));
        // `text_terms` looks an entry's terms up joined by spaces.
        assert!(
            vocabulary
                .terms
                .iter()
                .flatten()
                .all(|t| !t.is_empty() && !t.contains(' '))
        );
        let at = |entry: &str| vocabulary.entries.iter().position(|e| e == entry).unwrap();
        assert_eq!(
            vocabulary.terms[at("数据库连接失败")],
            ["数据", "据库", "库连", "连接", "接失", "失败"]
        );
        let service = vocabulary
            .entries
            .iter()
            .find(|e| e.ends_with("Service"))
            .unwrap();
        assert!(vocabulary.terms[at(service)].contains(&"service".to_owned()));
        let queries = vocabulary.queries();
        assert!(queries.iter().all(|(_, q)| !q.is_empty()), "{queries:?}");
    }
}
