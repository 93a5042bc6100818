//! What the command line prints and writes for people: tables and JSON ([`text`]), and the
//! self-contained HTML report ([`html`]).

pub mod html;
pub mod text;
