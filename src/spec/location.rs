//! Where a node of a YAML file is: JSON pointer → line number, for `file:line` error messages.
//! Built only when there is an error to report, so loading a good file never pays for it.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    path: Vec<String>,
    lines: HashMap<String, usize>,
}

impl Recorder {
    fn pointer(&self) -> String {
        let mut p = String::new();
        for seg in &self.path {
            p.push('/');
            p.push_str(&seg.replace('~', "~0").replace('/', "~1"));
        }
        p
    }

    /// A node starts at `line`: record it, and push its path segment.
    /// Returns false when the node is a mapping key.
    fn node_start(&mut self, line: usize) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) if key.is_none() => return false,
            Some(Frame::Map { key }) => {
                let k = key.clone().unwrap_or_default();
                self.path.push(k);
            }
            Some(Frame::Seq { next }) => {
                let i = *next;
                *next += 1;
                self.path.push(i.to_string());
            }
            None => {}
        }
        let ptr = self.pointer();
        self.lines.entry(ptr).or_insert(line);
        true
    }

    fn node_end(&mut self) {
        if let Some(Frame::Map { key }) = self.stack.last_mut() {
            *key = None;
        }
        if !self.stack.is_empty() {
            self.path.pop();
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(text, ..) => {
                if self.node_start(line) {
                    self.node_end();
                } else if let Some(Frame::Map { key }) = self.stack.last_mut() {
                    *key = Some(text.clone());
                    self.path.push(text);
                    let ptr = self.pointer();
                    self.path.pop();
                    self.lines.entry(ptr).or_insert(line);
                }
            }
            Event::Alias(_) if self.node_start(line) => self.node_end(),
            Event::MappingStart(..) => {
                self.node_start(line);
                self.stack.push(Frame::Map { key: None });
            }
            Event::SequenceStart(..) => {
                self.node_start(line);
                self.stack.push(Frame::Seq { next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.node_end();
            }
            _ => {}
        }
    }
}

/// Line numbers (1-based) of the nodes of a YAML document, by JSON pointer.
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    pub fn new(source: &str) -> Self {
        let mut rec = Recorder::default();
        // A file that does not parse has no index; its parse error carries its own line.
        let _ = Parser::new_from_str(source).load(&mut rec, false);
        LineIndex { lines: rec.lines }
    }

    /// The line of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn line_of(&self, pointer: &str) -> usize {
        let mut p = pointer;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_find_their_lines() {
        let src = "# comment\nname: x\nchat:\n  path: /a\n  request:\n    - one\n    - { $each: $.m }\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_of("/name"), 2);
        assert_eq!(idx.line_of("/chat/path"), 4);
        assert_eq!(idx.line_of("/chat/request/1"), 7);
        assert_eq!(idx.line_of("/chat/request/1/$each"), 7);
        assert_eq!(idx.line_of("/chat/missing/deeper"), 3);
    }
}
