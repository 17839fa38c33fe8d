//! `podnet run --junit FILE`: the run's expectations as a JUnit XML report
//! (one test suite for the scenario, one test case per expectation, plus
//! the run's validity), for CI systems that show test results.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// How one expectation (or the run's validity) came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    /// It was judged and failed.
    Fail(String),
    /// The run could not judge it: INVALID or ABORTED.
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub outcome: Outcome,
}

/// The report as XML.
pub fn render(scenario: &str, cases: &[Case]) -> anyhow::Result<String> {
    let mut report = Report::new("podnet run");
    let mut suite = TestSuite::new(scenario);
    suite.add_test_cases(cases.iter().map(|c| {
        let status = match &c.outcome {
            Outcome::Pass => TestCaseStatus::success(),
            Outcome::Fail(why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(why.clone());
                s
            }
            Outcome::Error(why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(why.clone());
                s
            }
        };
        TestCase::new(c.name.clone(), status)
    }));
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}

pub fn write(path: &Path, scenario: &str, cases: &[Case]) -> anyhow::Result<()> {
    crate::atomic_file::write_atomic(path, &render(scenario, cases)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_become_test_cases() {
        let xml = render(
            "partition",
            &[
                Case {
                    name: "clean".into(),
                    outcome: Outcome::Pass,
                },
                Case {
                    name: "tail <1s".into(),
                    outcome: Outcome::Fail("p99 = 2s".into()),
                },
                Case {
                    name: "validity".into(),
                    outcome: Outcome::Error("lag".into()),
                },
            ],
        )
        .unwrap();
        assert!(
            xml.contains(
                r#"<testsuite name="partition" tests="3" disabled="0" errors="1" failures="1""#
            ),
            "{xml}"
        );
        assert!(xml.contains("tail &lt;1s"), "{xml}");
        assert!(xml.contains(r#"<failure message="p99 = 2s""#), "{xml}");
    }
}
