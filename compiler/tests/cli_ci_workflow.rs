//! The example pull-request workflow (`examples/ci/wardgate.yml`): its `if:`
//! conditions, and its shell steps run as GitHub runs them (`bash -eo
//! pipefail`) in a scratch git repository with the `wardgate` under test on
//! `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The job's steps by name: (`if` condition, `run` script).
fn steps() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(root().join("examples/ci/wardgate.yml")).expect("read");
    let doc: Value = serde_yaml::from_str(&text).expect("the workflow is YAML");
    let steps = doc["jobs"]["policy"]["steps"]
        .as_sequence()
        .expect("jobs.policy.steps");
    steps
        .iter()
        .filter_map(|s| {
            let name = s["name"].as_str()?.to_string();
            let cond = s["if"].as_str().unwrap_or("").to_string();
            let run = s["run"].as_str().unwrap_or("").to_string();
            Some((name, (cond, run)))
        })
        .collect()
}

fn step(name: &str) -> (String, String) {
    steps()
        .remove(name)
        .unwrap_or_else(|| panic!("no step `{name}`"))
}

#[test]
fn later_steps_run_after_a_formatting_failure() {
    for name in [
        "Check (SARIF)",
        "Upload to code scanning",
        "Reachability diff against the base branch",
        "Comment the diff on the pull request",
        "Fail on errors (with annotations)",
    ] {
        let (cond, _) = step(name);
        assert!(
            cond.contains("always()"),
            "step `{name}` is skipped when an earlier step fails: `if: {cond}`"
        );
    }
}

#[test]
fn uploads_and_comments_only_files_that_exist() {
    let (cond, _) = step("Upload to code scanning");
    assert!(cond.contains("hashFiles('wardgate.sarif') != ''"), "{cond}");
    let (cond, _) = step("Comment the diff on the pull request");
    assert!(cond.contains("hashFiles('diff.md') != ''"), "{cond}");
}

/// A scratch git repository; removed on drop.
struct Repo {
    top: PathBuf,
    dir: PathBuf,
}

impl Repo {
    fn new(name: &str) -> Self {
        let top = std::env::temp_dir().join(format!("wardgate-ci-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("repo");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let repo = Self { top, dir };
        repo.git(&["init", "-q"]);
        repo
    }

    fn git(&self, args: &[&str]) {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&self.dir)
            .status()
            .expect("run git")
            .success();
        assert!(ok, "git {args:?} failed");
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn commit(&self) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", "c"]);
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&self.dir)
            .output()
            .expect("rev-parse");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    /// Runs a step's script; returns (exit code, `$GITHUB_OUTPUT` contents).
    fn run_step(&self, name: &str, base_sha: &str) -> (i32, String) {
        let (_, script) = step(name);
        assert!(!script.is_empty(), "step `{name}` has no `run`");
        let script = script.replace("${{ github.event.pull_request.base.sha }}", base_sha);
        assert!(!script.contains("${{"), "unhandled expression in `{name}`");
        let output = self.top.join("github_output");
        let _ = std::fs::remove_file(&output);
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_wardgate"))
            .parent()
            .expect("bin dir");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("POLICY", "policy/site.ward")
            .env("GITHUB_OUTPUT", &output)
            .env("NO_COLOR", "1")
            .status()
            .expect("run bash");
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&output).unwrap_or_default(),
        )
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

const GOOD: &str = "zone imaging { networks 10.20.0.0/23 }\nzone pacs    { networks 10.30.0.0/24 }\n\nallow imaging -> pacs : tcp/104\n";
const UNFORMATTED_WITH_ERROR: &str =
    "zone imaging {networks 10.20.0.0/23}\nallow imaging -> pacs : tcp/104\n";

#[test]
fn formatting_step_passes_in_a_repository_without_policies() {
    let repo = Repo::new("empty");
    repo.write("README.md", "no policies here\n");
    repo.commit();
    let (code, _) = repo.run_step("Formatting", "");
    assert_eq!(
        code, 0,
        "`xargs` without `-r` runs `wardgate fmt --check` with no file"
    );
}

#[test]
fn a_formatting_failure_still_yields_a_report_and_a_failure() {
    let repo = Repo::new("bad");
    repo.write("policy/site.ward", UNFORMATTED_WITH_ERROR);
    repo.commit();
    let (code, _) = repo.run_step("Formatting", "");
    assert_ne!(
        code, 0,
        "an unformatted policy must fail the formatting step"
    );

    let (code, output) = repo.run_step("Check (SARIF)", "");
    assert_eq!(
        code, 0,
        "the check step records the status, it does not fail"
    );
    assert!(output.contains("status=1"), "{output}");
    let sarif = std::fs::read_to_string(repo.dir.join("wardgate.sarif")).expect("wardgate.sarif");
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");

    let (code, _) = repo.run_step("Fail on errors (with annotations)", "");
    assert_eq!(code, 1, "the failure step fails the job");
}

#[test]
fn an_unreadable_policy_leaves_no_empty_report_to_upload() {
    let repo = Repo::new("missing");
    repo.write("README.md", "the policy is not here\n");
    repo.commit();
    let (code, output) = repo.run_step("Check (SARIF)", "");
    assert_eq!(code, 0);
    assert!(output.contains("status=2"), "{output}");
    assert!(!repo.dir.join("wardgate.sarif").exists());
}

#[test]
fn a_clean_change_passes_and_the_diff_is_written() {
    let repo = Repo::new("good");
    repo.write("policy/site.ward", GOOD);
    let base = repo.commit();
    repo.write(
        "policy/site.ward",
        &GOOD.replace("tcp/104", "tcp/104, tcp/443"),
    );
    repo.commit();
    assert_eq!(repo.run_step("Formatting", "").0, 0);
    let (code, output) = repo.run_step("Check (SARIF)", "");
    assert_eq!(code, 0);
    assert!(output.contains("status=0"), "{output}");
    let (code, _) = repo.run_step("Reachability diff against the base branch", &base);
    assert_eq!(code, 0);
    let diff = std::fs::read_to_string(repo.dir.join("diff.md")).expect("diff.md");
    assert!(diff.contains("443"), "{diff}");
    assert!(diff.ends_with("<!-- wardgate-diff -->\n"), "{diff}");
}
