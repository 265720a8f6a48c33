//! The built-in operations a transform may invoke, one struct each. The key that starts with `$`
//! names the operation and carries its main argument; the other keys are its options.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ExprSpec;

macro_rules! ops {
    ($( $(#[$doc:meta])* $key:literal => $name:ident { $($body:tt)* } )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
            #[serde(deny_unknown_fields)]
            pub struct $name { $($body)* }
        )*

        /// The operation names, for "did you mean" hints.
        pub const OP_NAMES: &[&str] = &[$($key),*];

        pub(crate) fn op_schemas(generator: &mut SchemaGenerator) -> Vec<Schema> {
            vec![$(generator.subschema_for::<$name>()),*]
        }
    };
}

ops! {
    /// A constant, never read as a path or operation.
    "$const" => Const { #[serde(rename = "$const")] pub value: Value }
    /// The first of these transforms that gives a value (a default is the last one).
    "$first" => First { #[serde(rename = "$first")] pub items: Vec<ExprSpec> }
    /// Look the value up in a table (keys are strings; numbers and booleans match their text).
    "$lookup" => Lookup {
        #[serde(rename = "$lookup")] pub value: ExprSpec,
        /// A literal table, or a transform giving an object (e.g. `$state.tools`).
        pub table: ExprSpec,
        /// The result when the key is not in the table (default: absent).
        #[serde(default)] pub default: Option<ExprSpec>,
    }
    /// Map each item of a list (`$` is the item, `$index` its position); absent results are dropped.
    "$each" => Each {
        #[serde(rename = "$each")] pub items: ExprSpec,
        /// Keep only items for which this holds.
        #[serde(default, rename = "where")] pub filter: Option<ExprSpec>,
        /// The transform for each item (default: the item itself).
        #[serde(default)] pub map: Option<ExprSpec>,
        /// Splice list results into the output instead of nesting them.
        #[serde(default)] pub flatten: bool,
    }
    /// `then` when the condition holds (is present and not false), else `else`.
    "$if" => If {
        #[serde(rename = "$if")] pub cond: ExprSpec,
        #[serde(default)] pub then: Option<ExprSpec>,
        #[serde(default, rename = "else")] pub otherwise: Option<ExprSpec>,
    }
    /// Choose by the value: the case whose glob pattern (`*` = any run) matches its text; when
    /// several match, the most specific (an exact name, else the most literal characters) wins.
    "$match" => Match {
        #[serde(rename = "$match")] pub value: ExprSpec,
        pub cases: BTreeMap<String, ExprSpec>,
        #[serde(default)] pub default: Option<ExprSpec>,
    }
    /// True when the value is present and not null.
    "$exists" => Exists { #[serde(rename = "$exists")] pub value: ExprSpec }
    /// True when both values are equal (absent equals only absent).
    "$eq" => Eq { #[serde(rename = "$eq")] pub pair: [ExprSpec; 2] }
    /// True when the values differ.
    "$ne" => Ne { #[serde(rename = "$ne")] pub pair: [ExprSpec; 2] }
    /// True when the value is one of these.
    "$in" => In { #[serde(rename = "$in")] pub value: ExprSpec, pub values: Vec<Value> }
    /// Negation of a condition.
    "$not" => Not { #[serde(rename = "$not")] pub cond: ExprSpec }
    /// True when every condition holds.
    "$all" => All { #[serde(rename = "$all")] pub conds: Vec<ExprSpec> }
    /// True when any condition holds.
    "$any" => Any { #[serde(rename = "$any")] pub conds: Vec<ExprSpec> }
    /// True when the value's text matches the glob pattern (`*` = any run of characters).
    "$like" => Like { #[serde(rename = "$like")] pub value: ExprSpec, pub pattern: String }
    /// True when the value has this JSON type: string, number, integer, boolean, array, object.
    "$is" => Is { #[serde(rename = "$is")] pub value: ExprSpec, #[serde(rename = "type")] pub kind: JsonType }
    /// Join the strings of a list (other items are skipped); absent when there are none.
    "$join" => Join { #[serde(rename = "$join")] pub items: ExprSpec, #[serde(default)] pub sep: String }
    /// Concatenate lists (a non-list value counts as a one-item list; absent ones are skipped).
    "$concat" => Concat { #[serde(rename = "$concat")] pub items: Vec<ExprSpec> }
    /// Absent when the value is an empty list, object or string.
    "$nonempty" => NonEmpty { #[serde(rename = "$nonempty")] pub value: ExprSpec }
    /// Wrap a single value in a list; a list stays as it is.
    "$to_list" => ToList { #[serde(rename = "$to_list")] pub value: ExprSpec }
    /// Merge runs of consecutive items whose `by` key is equal: the fields named in `concat`
    /// are concatenated (as lists), the others are taken from the first item of the run.
    "$merge_consecutive" => MergeConsecutive {
        #[serde(rename = "$merge_consecutive")] pub items: ExprSpec,
        pub by: ExprSpec,
        pub concat: Vec<String>,
    }
    /// Parse a `data:` URL into `{media_type, data}`; absent when it is not one.
    "$data_url" => DataUrl { #[serde(rename = "$data_url")] pub value: ExprSpec }
    /// Parse JSON text into a value; absent when it is not valid JSON.
    "$parse_json" => ParseJson { #[serde(rename = "$parse_json")] pub value: ExprSpec }
    /// Serialise a value as compact JSON text.
    "$to_json" => ToJson { #[serde(rename = "$to_json")] pub value: ExprSpec }
    /// The value as text (strings unchanged, others as JSON).
    "$string" => ToString { #[serde(rename = "$string")] pub value: ExprSpec }
    /// Remove these keys at every depth, except directly under the keys listed in `keep_under`
    /// (where keys are names, e.g. a JSON Schema's `properties`).
    "$strip_keys" => StripKeys {
        #[serde(rename = "$strip_keys")] pub value: ExprSpec,
        pub keys: Vec<String>,
        #[serde(default)] pub keep_under: Vec<String>,
    }
    /// Remove these top-level keys from an object.
    "$omit" => Omit { #[serde(rename = "$omit")] pub value: ExprSpec, pub keys: Vec<String> }
    /// Merge objects, later keys winning (absent items are skipped).
    "$merge" => Merge { #[serde(rename = "$merge")] pub items: Vec<ExprSpec> }
    /// Build an object from a list: one entry per item, with `key` and `value` evaluated on it.
    "$object" => Object {
        #[serde(rename = "$object")] pub items: ExprSpec,
        pub key: ExprSpec,
        pub value: ExprSpec,
    }
    /// Sum the numbers present (absent when none are).
    "$sum" => Sum { #[serde(rename = "$sum")] pub items: Vec<ExprSpec> }
    /// The length of a list, object or string.
    "$len" => Len { #[serde(rename = "$len")] pub value: ExprSpec }
    /// Run transforms in sequence, each on the result of the one before.
    "$pipe" => Pipe { #[serde(rename = "$pipe")] pub steps: Vec<ExprSpec> }
    /// Bind names for the inner transform (`$name`), each evaluated once.
    "$let" => Let {
        #[serde(rename = "$let")] pub bindings: BTreeMap<String, ExprSpec>,
        #[serde(rename = "in")] pub body: ExprSpec,
    }
    /// A minijinja expression over named values: `{ $expr: "a + b", with: { a: ..., b: ... } }`.
    "$expr" => Expr {
        #[serde(rename = "$expr")] pub source: String,
        #[serde(default)] pub with: BTreeMap<String, ExprSpec>,
    }
    /// Encode a list of numbers as base64 of little-endian float32 (OpenAI's `encoding_format: base64`).
    "$f32_base64" => F32Base64 { #[serde(rename = "$f32_base64")] pub value: ExprSpec }
    /// In a file that `extends` another: the parent's value at this JSON pointer (e.g.
    /// `/chat/request`), substituted when the files are merged.
    "$inherit" => Inherit { #[serde(rename = "$inherit")] pub pointer: String }
    /// Rewrite a tree: `map` runs on every object node, top down (`$` is the node), then on the
    /// nodes inside its result. The values of keys listed in `names_under` are maps of named
    /// nodes (a JSON Schema's `properties`), not nodes themselves.
    "$walk" => Walk {
        #[serde(rename = "$walk")] pub value: ExprSpec,
        pub map: ExprSpec,
        #[serde(default)] pub names_under: Vec<String>,
    }
}

/// A JSON type name for `$is`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}
