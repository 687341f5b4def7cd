//! The report and the evidence pack (issue 14): at scale, and rendered in a
//! real headless Chromium.

mod browser;
mod scale;
