//! The pieces a report's content is made of, free of any syntax: inline
//! text with the few kinds of emphasis the reports use, a labelled line, a
//! table. `sections` builds a run's content from these once; the terminal,
//! Markdown and HTML renderers each implement [`Markup`] and add only their
//! syntax — so a fact is worded in one place and reads the same everywhere
//! (the idea of hyperfine's `export/markup.rs`: one table, several markups).

/// A piece of inline text and how it stands out.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Span {
    /// Words as they are.
    Plain(String),
    /// A name or value as written (a request, a metric, a URL, a setting).
    Code(String),
    /// Words to notice (a count that matters).
    Strong(String),
    /// A failed verdict.
    Failed(String),
}

/// Inline text: spans in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Text(pub Vec<Span>);

impl Text {
    /// Plain words.
    pub fn plain(words: impl Into<String>) -> Self {
        Text(vec![Span::Plain(words.into())])
    }

    /// A name or value as written.
    pub fn code(name: impl Into<String>) -> Self {
        Text(vec![Span::Code(name.into())])
    }

    /// `pass`, or a failed `FAIL`: the verdict cell of a table.
    pub fn verdict(passed: bool) -> Self {
        if passed {
            Text::plain("pass")
        } else {
            Text(vec![Span::Failed("FAIL".into())])
        }
    }

    /// This text, then `span`.
    pub fn then(mut self, span: Span) -> Self {
        self.0.push(span);
        self
    }

    /// This text, then plain words.
    pub fn and(self, words: impl Into<String>) -> Self {
        self.then(Span::Plain(words.into()))
    }

    /// The words alone, without emphasis.
    pub fn words(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Span::Plain(w) | Span::Code(w) | Span::Strong(w) | Span::Failed(w) => w.as_str(),
            })
            .collect()
    }
}

impl From<String> for Text {
    fn from(words: String) -> Self {
        Text::plain(words)
    }
}

impl From<&str> for Text {
    fn from(words: &str) -> Self {
        Text::plain(words)
    }
}

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    /// Information.
    Plain,
    /// Something the reader must not miss (a warning, a limit passed).
    Alert,
}

/// One statement, optionally under a label (`sessions`, `environment`).
/// Labels are lowercase; the prose formats capitalise them, the terminal
/// prints them as they are (in capitals when the line is an alert).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    /// What the line is about, or None for a line that says so itself.
    pub label: Option<&'static str>,
    /// What it says.
    pub text: Text,
    /// How loud.
    pub tone: Tone,
}

impl Line {
    /// A line without a label.
    pub fn new(text: impl Into<Text>) -> Self {
        Line {
            label: None,
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    /// A line about `label`.
    pub fn labelled(label: &'static str, text: impl Into<Text>) -> Self {
        Line {
            label: Some(label),
            ..Line::new(text)
        }
    }

    /// An alert about `label`.
    pub fn alert(label: &'static str, text: impl Into<Text>) -> Self {
        Line {
            tone: Tone::Alert,
            ..Line::labelled(label, text)
        }
    }
}

/// A table: a header and rows of cells. The first column names the row
/// (left-aligned); the others are figures (right-aligned).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Table {
    /// What the table shows, lowercase, for the formats that title it.
    pub caption: Option<&'static str>,
    /// Column names.
    pub header: Vec<String>,
    /// One row of cells per line, as many as the header.
    pub rows: Vec<Vec<Text>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new<S: AsRef<str>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            caption: None,
            header: header.into_iter().map(|h| h.as_ref().to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// This table under `caption`.
    pub fn titled(self, caption: &'static str) -> Self {
        Table {
            caption: Some(caption),
            ..self
        }
    }

    /// This table with `rows` added (cells of text, or of plain words).
    pub fn with_rows<R, C>(mut self, rows: impl IntoIterator<Item = R>) -> Self
    where
        R: IntoIterator<Item = C>,
        C: Into<Text>,
    {
        let rows = rows
            .into_iter()
            .map(|row| row.into_iter().map(Into::into).collect());
        self.rows.extend(rows);
        self
    }

    /// The columns whose name `keep` accepts, in order (a short format
    /// shows fewer of them; the words stay the same).
    pub fn columns(&self, keep: impl Fn(&str) -> bool) -> Table {
        let kept: Vec<usize> = (0..self.header.len())
            .filter(|&i| keep(&self.header[i]))
            .collect();
        Table {
            caption: self.caption,
            header: kept.iter().map(|&i| self.header[i].clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|row| kept.iter().map(|&i| row[i].clone()).collect())
                .collect(),
        }
    }
}

/// `label` as the prose formats start a sentence with it: `Sessions`.
pub(super) fn capitalised(label: &str) -> String {
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `text` ended as a sentence: a full stop unless it already has one.
pub(super) fn sentence(text: String) -> String {
    if text.ends_with(['.', '!', '?', ':']) {
        text
    } else {
        text + "."
    }
}

/// One output syntax: how each kind of span is written. Everything else a
/// renderer writes (a line, a table) is made of these.
pub(super) trait Markup {
    /// One span in this syntax.
    fn span(&self, span: &Span) -> String;

    /// Inline text in this syntax.
    fn text(&self, text: &Text) -> String {
        text.0.iter().map(|s| self.span(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_format_keeps_the_columns_it_names_and_their_words() {
        let t = Table::new(["request", "count", "statuses"]).with_rows([vec![
            "a".into(),
            "1".into(),
            Text::code("200 ×1"),
        ]]);
        let short = t.columns(|h| h != "count");
        assert_eq!(short.header, ["request", "statuses"]);
        assert_eq!(short.rows[0][1].words(), "200 ×1");
    }

    #[test]
    fn labels_and_sentences_are_finished_once() {
        assert_eq!(capitalised("not sent"), "Not sent");
        assert_eq!(sentence("ran 5 s".into()), "ran 5 s.");
        assert_eq!(sentence("done.".into()), "done.");
    }
}
