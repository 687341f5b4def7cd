//! Inventory YAML files: a `devices` list whose entries become hosts of
//! their zones.
//!
//! serde_yaml reads the structure (and reports malformed YAML with a line
//! and column). It does not expose the position of each value, so a small
//! line scanner of block-style YAML finds each device's entry and the value
//! of each of its keys; diagnostics point there. For flow-style YAML
//! (`devices: [{...}]`) the scanner finds nothing and diagnostics point at
//! the start of the file.

use std::collections::HashMap;

use serde::Deserialize;

use crate::ast::Device;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, SourceFile, Span};

#[derive(Deserialize)]
struct Doc {
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
struct RawDevice {
    name: serde_yaml::Value,
    address: serde_yaml::Value,
    zone: serde_yaml::Value,
    #[serde(default)]
    vendor: Option<serde_yaml::Value>,
    #[serde(default)]
    model: Option<serde_yaml::Value>,
    #[serde(default)]
    firmware: Option<serde_yaml::Value>,
}

/// One device as read, before its address and zone are checked.
pub(crate) struct RawEntry {
    pub device: Device,
    pub address: String,
    /// The whole entry (from its `-`).
    pub span: Span,
    pub address_span: Span,
    pub zone_span: Span,
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads an inventory file; errors point into it.
pub(crate) fn read(file: FileId, source: &SourceFile) -> Result<Vec<RawEntry>, Box<Diagnostic>> {
    let text = &source.text;
    let doc: Doc = match serde_yaml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (start, end) = match e.location() {
                Some(loc) => {
                    let s = source.line_start(loc.line()) + loc.column().saturating_sub(1);
                    let s = s.min(text.len());
                    (s, crate::span::token_end(text, s))
                }
                None => (0, 0),
            };
            let msg = e.to_string();
            // serde_yaml appends " at line X column Y"; the span says that.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(Box::new(Diagnostic::new(
                &codes::INVALID_INVENTORY,
                Span::new(file, start, end),
                format!("inventory `{}` is not a device list: {msg}", source.path.display()),
            )
            .with_help("an inventory is a YAML mapping with a `devices` list; each device has `name`, `address` and `zone`")));
        }
    };
    let locs = locate(text);
    let whole = Span::new(file, 0, 0);
    let count = doc.devices.len();
    let mut out = Vec::with_capacity(count);
    for (i, raw) in doc.devices.into_iter().enumerate() {
        let loc = if locs.len() == count {
            locs.get(i)
        } else {
            None
        };
        let field = |key: &str| {
            loc.and_then(|l| l.fields.get(key)).map_or_else(
                || loc.map_or(whole, |l| Span::new(file, l.start, l.start + 1)),
                |(s, e)| Span::new(file, *s, *e),
            )
        };
        let span = loc.map_or(whole, |l| Span::new(file, l.start, l.end));
        let bad = |key: &str| {
            Box::new(
                Diagnostic::new(
                    &codes::INVALID_INVENTORY,
                    field(key),
                    format!("device {} has a `{key}` that is not a single value", i + 1),
                )
                .with_help(format!(
                    "write `{key}:` as text, such as `{key}: ct-scanner-1`"
                )),
            )
        };
        let name = scalar(&raw.name).ok_or_else(|| bad("name"))?;
        let address = scalar(&raw.address).ok_or_else(|| bad("address"))?;
        let zone = scalar(&raw.zone).ok_or_else(|| bad("zone"))?;
        let device = Device {
            name,
            zone,
            vendor: raw.vendor.as_ref().and_then(scalar),
            model: raw.model.as_ref().and_then(scalar),
            firmware: raw.firmware.as_ref().and_then(scalar),
        };
        out.push(RawEntry {
            device,
            address,
            span,
            address_span: field("address"),
            zone_span: field("zone"),
        });
    }
    Ok(out)
}

struct Loc {
    start: usize,
    end: usize,
    /// key -> byte span of its value (quotes included).
    fields: HashMap<String, (usize, usize)>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Finds the entries of the top-level `devices:` block sequence.
fn locate(text: &str) -> Vec<Loc> {
    let mut out: Vec<Loc> = Vec::new();
    let mut offset = 0;
    let mut in_devices = false;
    let mut item_indent: Option<usize> = None;
    for raw_line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let ind = indent(line);
        if !in_devices {
            if ind == 0 && (trimmed == "devices:" || trimmed.starts_with("devices: #")) {
                in_devices = true;
            }
            continue;
        }
        let is_item = trimmed == "-" || trimmed.starts_with("- ");
        if ind == 0 && !is_item {
            break; // the next top-level key
        }
        let mut key_part = trimmed;
        let mut key_col = ind;
        if is_item && item_indent.is_none_or(|i| i == ind) {
            item_indent = Some(ind);
            if let Some(last) = out.last_mut() {
                last.end = last.end.max(line_start);
            }
            out.push(Loc {
                start: line_start + ind,
                end: line_start + line.len(),
                fields: HashMap::new(),
            });
            key_part = trimmed[1..].trim_start();
            key_col = line.len() - key_part.len();
        }
        if let Some(last) = out.last_mut() {
            last.end = line_start + line.len();
            if let Some((key, value)) = key_part.split_once(':') {
                let key = key.trim();
                let value_trim = value.trim_start();
                let value_text = strip_comment(value_trim);
                let vstart = line_start + key_col + key_part.len() - value_trim.len();
                if !key.is_empty() && !value_text.is_empty() {
                    last.fields
                        .entry(key.to_string())
                        .or_insert((vstart, vstart + value_text.len()));
                }
            }
        }
    }
    out
}

fn strip_comment(value: &str) -> &str {
    let v = match value.find(" #") {
        Some(i) if !value.starts_with(['"', '\'']) => &value[..i],
        _ => value,
    };
    v.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_block_devices() {
        let text = "devices:\n  - name: a\n    address: 10.0.0.1  # x\n    zone: z\n  - name: b\n    address: \"10.0.0.2\"\n    zone: z\n";
        let locs = locate(text);
        assert_eq!(locs.len(), 2);
        let (s, e) = locs[0].fields["address"];
        assert_eq!(&text[s..e], "10.0.0.1");
        let (s, e) = locs[1].fields["address"];
        assert_eq!(&text[s..e], "\"10.0.0.2\"");
        let (s, e) = locs[1].fields["name"];
        assert_eq!(&text[s..e], "b");
    }
}
