//! Every `wardgate` command and its `--help`, run as a process: the
//! transcripts in `tests/cmd/`, one file per command (trycmd). Each shows
//! normal use, bad usage and bad input with exit code, stdout and stderr.
//! Re-accept after reading the diff:
//! `TRYCMD=overwrite cargo test -p wardgate-compiler --test cli_transcripts`.

#[test]
fn transcripts() {
    trycmd::TestCases::new()
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .case("tests/cmd/*.md")
        .case("tests/cmd/*.toml");
}
