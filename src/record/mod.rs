//! Recording formats: util-linux `script` typescript and timing files, and the recording's meta.json.

pub mod meta;
pub mod timing;
pub mod typescript;
