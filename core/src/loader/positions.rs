//! Where each node of a YAML document is: a map from key paths to line and
//! column, built from the parser's events. Also finds duplicate keys, which
//! serde would silently let overwrite each other in maps.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// The position of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePos {
    /// The key that holds the node, if it is a mapping value.
    pub key: Option<Pos>,
    /// The node itself.
    pub value: Option<Pos>,
}

/// Positions of every node of a document, by path.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<Vec<String>, NodePos>,
    /// Keys that appear twice in one mapping: the path of the second one and its position.
    pub duplicates: Vec<(Vec<String>, Pos)>,
    /// Top-level keys in order.
    pub top_keys: Vec<String>,
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl Positions {
    /// Reads the positions of `text`'s first document.
    pub fn of(text: &str) -> Result<Positions, SyntaxError> {
        let mut rec = Recorder::default();
        Parser::new_from_str(text)
            .load(&mut rec, false)
            .map_err(|e| SyntaxError {
                pos: (*e.marker()).into(),
                message: e.info().to_owned(),
            })?;
        Ok(rec.out)
    }

    /// The position of the node at `path`, if it exists.
    pub fn get(&self, path: &[String]) -> Option<&NodePos> {
        self.nodes.get(path)
    }

    /// The best position for a problem at `path`: the key or the value as
    /// asked, else the nearest ancestor that exists, else the start.
    pub fn locate(&self, path: &[String], want_key: bool, extra_lines: usize) -> Pos {
        for len in (0..=path.len()).rev() {
            if let Some(n) = self.nodes.get(&path[..len]) {
                let exact = len == path.len();
                let pos = if want_key || !exact {
                    n.key.or(n.value)
                } else {
                    n.value.or(n.key)
                };
                if let Some(mut p) = pos {
                    if exact && !want_key {
                        p.line += extra_lines;
                    }
                    return p;
                }
            }
        }
        Pos { line: 1, column: 1 }
    }
}

#[derive(Debug)]
enum Frame {
    Map {
        awaiting_key: bool,
        keys: HashSet<String>,
    },
    Seq {
        next: usize,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    path: Vec<String>,
    frames: Vec<Frame>,
    out: Positions,
}

impl Recorder {
    fn value_start(&mut self, mark: Marker) {
        if let Some(Frame::Seq { next }) = self.frames.last_mut() {
            self.path.push(next.to_string());
            *next += 1;
        }
        let entry = self.out.nodes.entry(self.path.clone()).or_insert(NodePos {
            key: None,
            value: None,
        });
        entry.value = Some(mark.into());
    }

    fn value_end(&mut self) {
        match self.frames.last_mut() {
            Some(Frame::Map { awaiting_key, .. }) => {
                self.path.pop();
                *awaiting_key = true;
            }
            Some(Frame::Seq { .. }) => {
                self.path.pop();
            }
            None => {}
        }
    }

    /// Handles a scalar in key position; returns false if the scalar is a value.
    fn key(&mut self, key: &str, mark: Marker) -> bool {
        let depth = self.frames.len();
        let Some(Frame::Map { awaiting_key, keys }) = self.frames.last_mut() else {
            return false;
        };
        if !*awaiting_key {
            return false;
        }
        *awaiting_key = false;
        let duplicate = !keys.insert(key.to_owned());
        self.path.push(key.to_owned());
        if duplicate {
            self.out.duplicates.push((self.path.clone(), mark.into()));
            // Keep the first occurrence's positions: record the repeat elsewhere.
            if let Some(last) = self.path.last_mut() {
                last.push_str("\u{0}duplicate");
            }
        } else {
            self.out.nodes.insert(
                self.path.clone(),
                NodePos {
                    key: Some(mark.into()),
                    value: None,
                },
            );
            if depth == 1 {
                self.out.top_keys.push(key.to_owned());
            }
        }
        true
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) if !self.key(&s, mark) => {
                self.value_start(mark);
                self.value_end();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.key("?", mark) {
                    // A complex key: not used by weir files; serde reports it.
                }
                self.value_start(mark);
                self.frames.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        awaiting_key: true,
                        keys: HashSet::new(),
                    }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.value_end();
            }
            Event::Alias(_) => {
                self.value_start(mark);
                self.value_end();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_keys_values_and_duplicates() {
        let text = "dag: a\ntasks:\n  one:\n    kind: shell\n    depends_on: [two, three]\n  one:\n    kind: shell\n";
        let pos = Positions::of(text).unwrap_or_else(|e| panic!("{e:?}"));
        let kind = pos.get(&p(&["tasks", "one", "kind"])).copied();
        assert_eq!(kind.and_then(|n| n.key), Some(Pos { line: 4, column: 5 }));
        assert_eq!(
            kind.and_then(|n| n.value),
            Some(Pos {
                line: 4,
                column: 11
            })
        );
        let dep = pos.locate(&p(&["tasks", "one", "depends_on", "1"]), false, 0);
        assert_eq!(
            dep,
            Pos {
                line: 5,
                column: 23
            }
        );
        assert_eq!(
            pos.duplicates,
            vec![(p(&["tasks", "one"]), Pos { line: 6, column: 3 })]
        );
        assert_eq!(pos.top_keys, vec!["dag".to_owned(), "tasks".to_owned()]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = Positions::of("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
