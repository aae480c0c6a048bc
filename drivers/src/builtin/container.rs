//! `container:<netns>`: a container joins another sandbox's namespace. weft does not place
//! processes; attaching checks that the named namespace exists and that the joining sandbox
//! really is that same namespace, and records the attachment.

use std::os::unix::fs::MetadataExt;

use serde_json::json;

use crate::error::DriverError;
use crate::model::Endpoint;
use crate::netns::Netns;

/// Endpoint option naming the namespace joined.
pub const JOINS: &str = "weft.container";

fn target(ep: &Endpoint) -> Result<&str, DriverError> {
    ep.options.get(JOINS).map(String::as_str).ok_or_else(|| {
        DriverError::Invalid("container mode needs the namespace to join: container:<path>".into())
    })
}

pub(super) fn validate(ep: &Endpoint) -> Result<(), DriverError> {
    Netns::open(target(ep)?).map(drop)
}

pub(super) fn join(ep: &Endpoint, joiner: &Netns) -> Result<(), DriverError> {
    let target = Netns::open(target(ep)?)?;
    let same = match (
        std::fs::metadata(target.path()),
        std::fs::metadata(joiner.path()),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        return Ok(());
    }
    Err(DriverError::Invalid(format!(
        "{} is not the namespace of container:{}; run the process in that namespace",
        joiner.path().display(),
        target.path().display()
    )))
}

pub(super) fn inspect(endpoints: &[Endpoint]) -> Result<serde_json::Value, DriverError> {
    Ok(json!({
        "joined": endpoints.iter().map(|e| json!({
            "id": e.id,
            "sandbox": e.sandbox,
            "joins": e.options.get(JOINS),
            "present": e.options.get(JOINS).is_some_and(|p| Netns::open(p).is_ok()),
        })).collect::<Vec<_>>(),
    }))
}
