//! The column alignment kubectl's `describe` gets from Go's `text/tabwriter`
//! (minwidth 0, tabwidth 8, padding 2, padding with spaces, no flags),
//! behind the `PrefixWriter` kubectl writes through: `write(level, text)`
//! indents by two spaces a level, cells end at `\t`.
//!
//! Go's rule, kept here: a column is a run of consecutive lines that all
//! have a tab-terminated cell in it; its width is its widest cell plus the
//! padding. The last cell of a line belongs to no column, so a line without
//! a tab ends every column above it. `flush` ends them too, as kubectl's
//! `w.Flush()` before the Events table does. Not emulated: right alignment,
//! `DiscardEmptyColumns`, escapes and tab padding, which kubectl does not use.

const PADDING: usize = 2;
const MIN_WIDTH: usize = 0;

/// Text written at indentation levels, aligned when it is finished.
#[derive(Debug, Default)]
pub struct PrefixWriter {
    done: String,
    pending: String,
}

impl PrefixWriter {
    pub fn new() -> PrefixWriter {
        PrefixWriter::default()
    }

    /// `text` after two spaces per `level` (only before the text, not
    /// before each line in it, as kubectl's writer).
    pub fn write(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(text);
    }

    /// Aligns what was written so far on its own: later lines do not widen
    /// its columns.
    pub fn flush(&mut self) {
        self.done.push_str(&align(&self.pending));
        self.pending.clear();
    }

    pub fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// Aligns tab-separated text as Go's tabwriter does with kubectl's settings.
pub fn align(text: &str) -> String {
    let mut pieces: Vec<&str> = text.split('\n').collect();
    // A final newline ends the last line rather than starting an empty one.
    let trailing_newline = pieces.last() == Some(&"");
    if trailing_newline {
        pieces.pop();
    }
    let lines: Vec<Vec<&str>> = pieces.iter().map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len());
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    if !trailing_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

/// Go's `Writer.format`: finds the blocks of lines sharing column
/// `widths.len()`, sizes each, and recurses into the next column.
fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = MIN_WIDTH;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(w);
        format(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                for _ in width(cell)..*w {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(align(input), expected, "input: {input:?}");
    }

    #[test]
    fn aligns_like_go_tabwriter() {
        // kubectl's label column: two spaces after the longest label.
        check(
            "Name:\tweb\nExternal Traffic Policy:\tCluster\n",
            "Name:                     web\nExternal Traffic Policy:  Cluster\n",
        );
        // A line without a tab ends the column; the next block is sized alone.
        check(
            "Name:\tweb\nContainers:\n  Image:\tx\n",
            "Name:  web\nContainers:\n  Image:  x\n",
        );
        // Indented cells share column 0 with unindented ones.
        check(
            "IP:\t10.0.0.1\n    Image:\tx\n",
            "IP:         10.0.0.1\n    Image:  x\n",
        );
        // Continuation lines start with a tab: an empty first cell.
        check(
            "Labels:\ta=b\n\tc=d\nSelector:\tapp=web\n",
            "Labels:    a=b\n           c=d\nSelector:  app=web\n",
        );
        // Nested columns: the second column spans only the lines that have it.
        check(
            "  Type\tReason\tAge\n  ----\t------\t---\n  Normal\tScheduled\t5s\n",
            "  Type    Reason     Age\n  ----    ------     ---\n  Normal  Scheduled  5s\n",
        );
        // Widths count characters, not bytes.
        check("é:\tx\nab:\ty\n", "é:   x\nab:  y\n");
        // Text without a final newline keeps none.
        check("a:\tb", "a:  b");
        check("", "");
    }

    #[test]
    fn flush_ends_the_columns() {
        let mut w = PrefixWriter::new();
        w.write(0, "Internal Traffic Policy:\tCluster\n");
        w.flush();
        w.write(0, "Events:\t<none>\n");
        assert_eq!(
            w.finish(),
            "Internal Traffic Policy:  Cluster\nEvents:  <none>\n"
        );
    }

    #[test]
    fn levels_indent_two_spaces_before_the_text() {
        let mut w = PrefixWriter::new();
        w.write(0, "Containers:\n");
        w.write(1, "web:\n");
        w.write(2, "Image:\tx\n");
        w.write(2, "Port:\t80/TCP\n");
        assert_eq!(
            w.finish(),
            "Containers:\n  web:\n    Image:  x\n    Port:   80/TCP\n"
        );
    }
}
