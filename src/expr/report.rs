//! What a request transform could not translate: values a `$match` has no case for, declared
//! `unmatched: drop` (the value is left out and reported) or `unmatched: refuse` (the request is
//! answered 400). Collected while a request is translated, read by the call afterwards.

use std::cell::RefCell;

use serde_json::Value;

/// One value no case took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unmatched {
    /// Where it was in the request, as a JSON path (`messages[1].content[0]`).
    pub path: String,
    /// The value that matched no case (`input_audio`).
    pub value: String,
    pub refuse: bool,
}

/// The values a translation left out or refused.
#[derive(Debug, Default)]
pub(crate) struct Report(RefCell<Vec<Unmatched>>);

impl Report {
    pub fn record(&self, root: &Value, at: &Value, value: &str, refuse: bool) {
        let path = path_of(root, at).unwrap_or_else(|| "(a computed value)".into());
        let mut items = self.0.borrow_mut();
        // The same place seen twice (a transform that reads it twice) is one report.
        if !items.iter().any(|u| u.path == path && u.value == value) {
            items.push(Unmatched { path, value: value.to_string(), refuse });
        }
    }

    pub fn take(self) -> Vec<Unmatched> {
        self.0.into_inner()
    }
}

/// The JSON path of `at` inside `root`: the node itself when `at` points into the document,
/// else the first node equal to it. Runs only when something is reported.
fn path_of(root: &Value, at: &Value) -> Option<String> {
    fn walk(v: &Value, want: &dyn Fn(&Value) -> bool, path: &mut String) -> bool {
        if want(v) {
            return true;
        }
        let len = path.len();
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    if walk(child, want, path) {
                        return true;
                    }
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    if walk(child, want, path) {
                        return true;
                    }
                    path.truncate(len);
                }
            }
            _ => {}
        }
        false
    }
    let mut path = String::new();
    if walk(root, &|v| std::ptr::eq(v, at), &mut path) {
        return Some(path);
    }
    path.clear();
    walk(root, &|v| v == at, &mut path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_by_identity_then_by_value() {
        let doc = json!({"messages": [{"content": [{"type": "text"}, {"type": "input_audio"}]}]});
        let part = &doc["messages"][0]["content"][1];
        assert_eq!(path_of(&doc, part).as_deref(), Some("messages[0].content[1]"));
        let copy = part.clone();
        assert_eq!(path_of(&doc, &copy).as_deref(), Some("messages[0].content[1]"));
        assert_eq!(path_of(&doc, &json!({"type": "file"})), None);
    }
}
