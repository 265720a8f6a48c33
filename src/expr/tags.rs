//! Splitting tagged text out of a text that arrives in pieces: `<think>…</think>` inside a
//! model's answer, moved to another field. Used by `$split_tag` (a whole text) and by a stream's
//! `split_tag` (text deltas, a tag possibly cut across two chunks).

/// The two tags, and where the splitter is. Text is pushed piece by piece; what is outside the
/// tags and what is inside come out as soon as they cannot be the start of a tag.
#[derive(Debug, Clone)]
pub(crate) struct TagSplitter {
    open: String,
    close: String,
    inside: bool,
    /// The end of the last piece when it could be the start of the next tag.
    held: String,
    /// Whitespace right after a tag is dropped (the newline after `<think>` or `</think>`).
    skip_space: bool,
}

impl TagSplitter {
    pub fn new(open: &str, close: &str) -> TagSplitter {
        TagSplitter { open: open.into(), close: close.into(), inside: false, held: String::new(), skip_space: false }
    }

    /// Split `piece`: text outside the tags is appended to `outside`, text between them to
    /// `inside`. The tags themselves are dropped.
    pub fn push(&mut self, piece: &str, outside: &mut String, inside: &mut String) {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(piece);
        let mut rest = text.as_str();
        loop {
            if self.skip_space {
                rest = rest.trim_start();
                if rest.is_empty() {
                    return;
                }
                self.skip_space = false;
            }
            let tag = if self.inside { &self.close } else { &self.open };
            let out = if self.inside { &mut *inside } else { &mut *outside };
            match rest.find(tag.as_str()) {
                Some(at) => {
                    out.push_str(&rest[..at]);
                    rest = &rest[at + tag.len()..];
                    self.inside = !self.inside;
                    self.skip_space = true;
                }
                None => {
                    // Hold back an end that could begin the tag; pass the rest on.
                    let keep = (1..tag.len().min(rest.len() + 1))
                        .rev()
                        .find(|&n| rest.is_char_boundary(rest.len() - n) && tag.starts_with(&rest[rest.len() - n..]))
                        .unwrap_or(0);
                    out.push_str(&rest[..rest.len() - keep]);
                    self.held.push_str(&rest[rest.len() - keep..]);
                    return;
                }
            }
        }
    }

    /// The text is over: what was held back is text after all.
    pub fn finish(&mut self, outside: &mut String, inside: &mut String) {
        let held = std::mem::take(&mut self.held);
        if self.inside { inside } else { outside }.push_str(&held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str]) -> (String, String) {
        let mut s = TagSplitter::new("<think>", "</think>");
        let (mut out, mut inn) = (String::new(), String::new());
        for p in pieces {
            s.push(p, &mut out, &mut inn);
        }
        s.finish(&mut out, &mut inn);
        (out, inn)
    }

    #[test]
    fn whole_and_cut_anywhere_give_the_same_split() {
        let text = "<think>\nCheck sources…\n</think>\n\nParis is the capital.";
        let want = ("Paris is the capital.".to_string(), "Check sources…\n".to_string());
        assert_eq!(split(&[text]), want);
        // Every cut into two and three pieces, at every character boundary.
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        for &a in &cuts {
            assert_eq!(split(&[&text[..a], &text[a..]]), want, "cut at {a}");
            for &b in cuts.iter().filter(|&&b| b >= a) {
                assert_eq!(split(&[&text[..a], &text[a..b], &text[b..]]), want, "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn text_without_tags_and_lookalikes_pass_through() {
        assert_eq!(
            split(&["a < b and <thin", "king> is fine"]),
            ("a < b and <thinking> is fine".into(), String::new())
        );
        assert_eq!(split(&["ends with <thi"]), ("ends with <thi".into(), String::new()));
        // An unclosed tag: the rest is reasoning.
        assert_eq!(split(&["<think>still going"]), (String::new(), "still going".into()));
    }
}
