//! Safe admission (issue 17, ADR 0012): a budget with `admission = "safe"` turns away a waiting
//! job whose worst-case cost does not fit in what the budget has left after its committed
//! spend, so jobs are not started only to be killed at a threshold (Slurm's safe mode).
//!
//! A job's worst case is its size × its timeout × its price: AWS Batch terminates an attempt
//! `timeout.attemptDurationSeconds` after its `startedAt`
//! (<https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html>; an array's
//! timeout applies to each child), and the container may take the stop's grace
//! ([`billing::STOP_GRACE_SECONDS`]) more. A Fargate job is priced from the price table at
//! on-demand rates (Batch does not say which capacity it will get; on-demand is the higher).
//! An EC2 job's price is its share of an instance not chosen yet, and a job without a timeout
//! has no bound: both are admitted, and named as such (never cancelled on a guess). The image
//! pull before `startedAt` is billed on Fargate too and is not bounded by the timeout; it is
//! not in the worst case.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::billing::{self, SECONDS_PER_HOUR, STOP_GRACE_SECONDS};
use super::budgets::{Admission, BudgetBook, JobFacets};
use super::facts::{Architecture, Capacity, OperatingSystem, Platform, TaskSize};
use super::prices::PriceTable;

/// What admission needs to know of a waiting job (AWS Batch's `DescribeJobs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobShape {
    /// `platformCapabilities`: `None` when Batch's answer did not say.
    pub platform: Option<Platform>,
    /// Summed over its containers.
    pub size: Option<TaskSize>,
    pub architecture: Option<Architecture>,
    pub operating_system: Option<OperatingSystem>,
    /// `timeout.attemptDurationSeconds`.
    pub timeout_seconds: Option<u32>,
    /// An array parent's size: each child may run the timeout.
    pub array_size: Option<u32>,
    /// An array parent some of whose children have started (Batch's `statusSummary`): its
    /// running children are in the committed spend already, and cancelling the parent would
    /// cancel the rest of a running array, so it is not judged.
    pub array_started: bool,
    /// `retryStrategy.attempts` (1 to 10): a timeout starts over for each new attempt.
    pub attempts: Option<u32>,
    /// Batch's description of the job was refused by the event parser (a size, timeout or
    /// platform out of range, logged with the field): nothing above is known.
    pub unreadable: bool,
}

/// A waiting job's worst-case cost, or why it has none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorstCase {
    /// At most this many USD.
    Bounded { usd: Decimal },
    /// No timeout: it may run for ever.
    NoTimeout,
    /// Its price is not known before it runs (EC2, EKS, Windows, an unknown size or region).
    Unpriced { why: String },
}

/// The worst case of a job of `shape` in `region`.
pub fn worst_case(shape: &JobShape, prices: &PriceTable, region: &str) -> WorstCase {
    let unpriced = |why: &str| WorstCase::Unpriced {
        why: why.to_owned(),
    };
    if shape.unreadable {
        return unpriced("Batch's description of it was refused by the event parser (logged)");
    }
    if shape.array_started {
        return unpriced("an array whose children have started (they are in the committed spend)");
    }
    let Some(timeout) = shape.timeout_seconds else {
        return WorstCase::NoTimeout;
    };
    match shape.platform {
        Some(Platform::Fargate) => {}
        Some(Platform::Ec2) => {
            return unpriced("an EC2 job's price is its share of an instance not yet chosen");
        }
        Some(Platform::Eks) => return unpriced("a job on EKS is not priced"),
        None => return unpriced("Batch's answer did not name the job's platform"),
    }
    if shape.operating_system == Some(OperatingSystem::Windows) {
        return unpriced("Windows on Fargate is not priced");
    }
    let Some(size) = shape.size else {
        return unpriced("Batch's answer did not give the job's vCPU and memory");
    };
    let architecture = shape.architecture.unwrap_or(Architecture::X86_64);
    let rates = match prices.fargate(region, architecture, Capacity::OnDemand) {
        Ok(rates) => rates,
        Err(why) => return unpriced(&why.to_string()),
    };
    let seconds = (i64::from(timeout) + STOP_GRACE_SECONDS).max(billing::MINIMUM_BILLED_SECONDS);
    // Each child of an array, and each attempt a retry strategy allows: AWS's guide says the
    // timeout starts over for a new attempt
    // (https://docs.aws.amazon.com/batch/latest/userguide/job_timeouts.html).
    let copies = Decimal::from(shape.array_size.unwrap_or(1).max(1))
        * Decimal::from(shape.attempts.unwrap_or(1).clamp(1, 10));
    match rates
        .hourly(&size)
        .checked_mul(Decimal::from(seconds))
        .and_then(|numerator| numerator.checked_mul(copies))
    {
        Some(numerator) => WorstCase::Bounded {
            usd: numerator / Decimal::from(SECONDS_PER_HOUR),
        },
        None => unpriced("its worst case overflows"),
    }
}

/// A waiting job, as admission sees it.
#[derive(Clone, Debug)]
pub struct Waiting<'a> {
    pub job_id: &'a str,
    pub facets: JobFacets<'a>,
    /// When it was submitted (Unix ms): the older are admitted first.
    pub created_at_ms: Option<i64>,
    pub worst: WorstCase,
    /// Already placed (STARTING): it will run whatever admission says, and it is in no
    /// committed spend yet (its deadline needs Batch's `startedAt`), so its worst case is
    /// taken from what is left before any waiting job is judged, and it is never refused.
    pub starting: bool,
}

/// What admission decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionPlan {
    /// Jobs to cancel, each with the budget it does not fit in.
    pub refused: Vec<Refusal>,
    /// Jobs of a safe budget admitted without a bound, and why (no timeout, no price).
    pub unbounded: Vec<(String, String)>,
    /// What each safe budget has left once every job admitted took its worst case (the
    /// safe gate's figure for the jobs arriving before the next run: `core::arrival`).
    pub left: BTreeMap<String, Decimal>,
}

/// A job turned away: its worst case is more than its budget has left uncommitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub job_id: String,
    pub budget: String,
    pub worst_usd: Decimal,
    /// What the budget had left uncommitted (after the waiting jobs admitted before it).
    pub left_usd: Decimal,
}

impl Refusal {
    /// The reason recorded and given to Batch.
    pub fn reason(&self) -> String {
        format!(
            "job {} may cost up to {} USD (its size × its timeout × its price), more than the {} USD budget {} has left after its committed spend",
            self.job_id,
            self.worst_usd.round_dp(6).normalize(),
            self.left_usd.round_dp(6).normalize(),
            self.budget
        )
    }
}

impl BudgetBook {
    /// Admission for the waiting jobs `jobs` of the budgets with `admission = "safe"` among
    /// `left` (budget → its amount less its committed spend): oldest first, a job whose worst
    /// case is more than what any safe budget it counts in has left is refused (naming the
    /// first such budget by name); one that fits is admitted and its worst case taken from
    /// every safe budget it counts in, since it will run (two waiting jobs that each fit alone
    /// but not together are not both admitted). An enforcing budget names a refusal before a
    /// dry-run one; a job refused by a dry-run budget alone will run, so its worst case is
    /// taken too. Jobs without a bound are admitted and named. Starting jobs come first,
    /// whatever their age: never refused, each takes its worst case (`Waiting::starting`).
    /// A job in no safe budget is not looked at.
    pub fn admit(&self, left: &BTreeMap<String, Decimal>, jobs: &[Waiting<'_>]) -> AdmissionPlan {
        let mut left: BTreeMap<&str, Decimal> = left
            .iter()
            .filter(|(name, _)| {
                self.get(name)
                    .is_some_and(|spec| spec.admission == Admission::Safe)
            })
            .map(|(name, left)| (name.as_str(), *left))
            .collect();
        let mut order: Vec<&Waiting<'_>> = jobs.iter().collect();
        order.sort_by(|a, b| {
            (!a.starting, a.created_at_ms.unwrap_or(i64::MAX), a.job_id).cmp(&(
                !b.starting,
                b.created_at_ms.unwrap_or(i64::MAX),
                b.job_id,
            ))
        });
        let mut plan = AdmissionPlan::default();
        for job in order {
            let safe: Vec<&str> = self
                .budgets_of(&job.facets)
                .into_iter()
                .filter(|name| left.contains_key(name))
                .collect();
            if safe.is_empty() {
                continue;
            }
            let worst = match &job.worst {
                WorstCase::Bounded { usd } => *usd,
                WorstCase::NoTimeout => {
                    plan.unbounded
                        .push((job.job_id.to_owned(), "it has no timeout".to_owned()));
                    continue;
                }
                WorstCase::Unpriced { why } => {
                    plan.unbounded.push((job.job_id.to_owned(), why.clone()));
                    continue;
                }
            };
            // An enforcing budget names the refusal before a dry-run one, so a dry run never
            // takes its place; a refusal only recorded (dry run) lets the job run, so its
            // worst case is still taken from what is left.
            let dry = |name: &str| self.get(name).is_none_or(|spec| spec.dry_run);
            let over: Vec<&str> = safe
                .iter()
                .copied()
                .filter(|name| !job.starting && worst > left[*name])
                .collect();
            let refusing = over.iter().find(|name| !dry(name)).or_else(|| over.first());
            if let Some(&budget) = refusing {
                plan.refused.push(Refusal {
                    job_id: job.job_id.to_owned(),
                    budget: budget.to_owned(),
                    worst_usd: worst,
                    left_usd: left[budget],
                });
                if !dry(budget) {
                    continue;
                }
            }
            for name in safe {
                if let Some(held) = left.get_mut(name) {
                    *held -= worst;
                }
            }
        }
        plan.left = left
            .into_iter()
            .map(|(name, left)| (name.to_owned(), left))
            .collect();
        plan
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use rust_decimal::dec;

    use super::*;

    fn fargate(vcpu: Decimal, memory_gib: Decimal, timeout: Option<u32>) -> JobShape {
        JobShape {
            platform: Some(Platform::Fargate),
            size: Some(TaskSize {
                vcpu,
                memory_gib,
                storage_gib: None,
                gpus: None,
            }),
            timeout_seconds: timeout,
            ..JobShape::default()
        }
    }

    #[test]
    fn a_fargate_jobs_worst_case_is_its_price_for_its_timeout_and_the_stop() {
        // AWS's us-east-1 Linux/x86 Fargate prices, written out: $0.04048 per vCPU-hour and
        // $0.004445 per GB-hour (https://aws.amazon.com/fargate/pricing/).
        let rate = dec!(0.04048) * dec!(2) + dec!(0.004445) * dec!(4);
        let worst = worst_case(
            &fargate(dec!(2), dec!(4), Some(3600)),
            &PriceTable::builtin(),
            "us-east-1",
        );
        assert_eq!(
            worst,
            WorstCase::Bounded {
                usd: rate * dec!(3630) / dec!(3600)
            }
        );
        // An array of 10 children: each may run the timeout; with 3 attempts, each attempt.
        let mut array = fargate(dec!(2), dec!(4), Some(3600));
        array.array_size = Some(10);
        assert_eq!(
            worst_case(&array, &PriceTable::builtin(), "us-east-1"),
            WorstCase::Bounded {
                usd: rate * dec!(3630) * dec!(10) / dec!(3600)
            }
        );
        array.attempts = Some(3);
        assert_eq!(
            worst_case(&array, &PriceTable::builtin(), "us-east-1"),
            WorstCase::Bounded {
                usd: rate * dec!(3630) * dec!(30) / dec!(3600)
            }
        );
        // An array already running is never judged (cancelling it would cancel the rest).
        array.array_started = true;
        assert!(matches!(
            worst_case(&array, &PriceTable::builtin(), "us-east-1"),
            WorstCase::Unpriced { why } if why.contains("started")
        ));
    }

    #[test]
    fn jobs_without_a_bound_say_why() {
        let prices = PriceTable::builtin();
        assert_eq!(
            worst_case(&fargate(dec!(1), dec!(2), None), &prices, "us-east-1"),
            WorstCase::NoTimeout
        );
        let mut ec2 = fargate(dec!(1), dec!(2), Some(600));
        ec2.platform = Some(Platform::Ec2);
        assert!(matches!(
            worst_case(&ec2, &prices, "us-east-1"),
            WorstCase::Unpriced { why } if why.contains("EC2")
        ));
        let mut unknown = fargate(dec!(1), dec!(2), Some(600));
        unknown.platform = None;
        assert!(matches!(
            worst_case(&unknown, &prices, "us-east-1"),
            WorstCase::Unpriced { why } if why.contains("platform")
        ));
    }

    fn book() -> BudgetBook {
        BudgetBook::parse(
            r#"
[[budget]]
name = "org"
amount_usd = "100"
period = "month"
admission = "safe"
thresholds = [{ at_percent = "100", action = "drain" }]

[[budget]]
name = "genomics"
parent = "org"
amount_usd = "10"
period = "month"
admission = "safe"
scope = { tags = ["team=genomics"] }
thresholds = [{ at_percent = "100", action = "drain" }]

[[budget]]
name = "media"
amount_usd = "10"
period = "month"
scope = { tags = ["team=media"] }
thresholds = [{ at_percent = "100", action = "drain" }]
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_oldest_jobs_that_fit_are_admitted_and_the_rest_refused_naming_the_budget() {
        let book = book();
        let genomics = [("team".to_owned(), "genomics".to_owned())];
        let media = [("team".to_owned(), "media".to_owned())];
        fn facets(tags: &[(String, String)]) -> JobFacets<'_> {
            JobFacets {
                queue: "shared",
                compute_environment: None,
                job_definition: "align",
                tags,
            }
        }
        let (genomics, media) = (genomics.as_slice(), media.as_slice());
        let bounded = |usd| WorstCase::Bounded { usd };
        let jobs = [
            // Submitted second: 4 USD left after the first, so its 5 do not fit.
            Waiting {
                job_id: "g2",
                facets: facets(genomics),
                created_at_ms: Some(2),
                worst: bounded(dec!(5)),
                starting: false,
            },
            Waiting {
                job_id: "g1",
                facets: facets(genomics),
                created_at_ms: Some(1),
                worst: bounded(dec!(3)),
                starting: false,
            },
            // Fits in what is left after g1.
            Waiting {
                job_id: "g3",
                facets: facets(genomics),
                created_at_ms: Some(3),
                worst: bounded(dec!(4)),
                starting: false,
            },
            Waiting {
                job_id: "g4",
                facets: facets(genomics),
                created_at_ms: Some(4),
                worst: WorstCase::NoTimeout,
                starting: false,
            },
            // Media is not safe, but its jobs count in org (safe): org has 90 left after its
            // 3 committed and g1 and g3, so 90 fits exactly and the next cent does not.
            Waiting {
                job_id: "m1",
                facets: facets(media),
                created_at_ms: Some(5),
                worst: bounded(dec!(90)),
                starting: false,
            },
            Waiting {
                job_id: "m2",
                facets: facets(media),
                created_at_ms: Some(6),
                worst: bounded(dec!(0.01)),
                starting: false,
            },
        ];
        // Genomics has committed 3 of its 10; org 3 of its 100.
        let left = BTreeMap::from([
            ("genomics".to_owned(), dec!(7)),
            ("org".to_owned(), dec!(97)),
            ("media".to_owned(), dec!(10)),
        ]);
        let plan = book.admit(&left, &jobs);
        assert_eq!(
            plan.refused,
            vec![
                Refusal {
                    job_id: "g2".into(),
                    budget: "genomics".into(),
                    worst_usd: dec!(5),
                    left_usd: dec!(4),
                },
                Refusal {
                    job_id: "m2".into(),
                    budget: "org".into(),
                    worst_usd: dec!(0.01),
                    left_usd: dec!(0),
                },
            ]
        );
        assert_eq!(
            plan.unbounded,
            vec![("g4".to_owned(), "it has no timeout".to_owned())]
        );
        assert!(plan.refused[0].reason().contains("budget genomics"));
        // A dry-run budget never takes an enforcing one's place in a refusal: genomics made a
        // dry run, g2 is refused by org (enforcing) when both are over.
        let dry = BudgetBook::new(
            book.budgets()
                .map(|spec| {
                    let mut spec = spec.clone();
                    spec.dry_run = spec.name == "genomics";
                    spec
                })
                .collect(),
        )
        .unwrap();
        let tight = BTreeMap::from([
            ("genomics".to_owned(), dec!(1)),
            ("org".to_owned(), dec!(1)),
        ]);
        let refused = dry.admit(&tight, &jobs[..1]).refused;
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].budget, "org");
        // Refused by the dry-run budget alone, a job runs: its worst case is taken from org's.
        let only_dry = BTreeMap::from([
            ("genomics".to_owned(), dec!(1)),
            ("org".to_owned(), dec!(6)),
        ]);
        let plan = dry.admit(&only_dry, &jobs[..2]);
        let names: Vec<(&str, &str)> = plan
            .refused
            .iter()
            .map(|r| (r.job_id.as_str(), r.budget.as_str()))
            .collect();
        // g1 (3) fits org's 6 but not genomics' 1: recorded by genomics, taken from org (3
        // left); g2 (5) is then over both, and org names it.
        assert_eq!(names, [("g1", "genomics"), ("g2", "org")]);
        // With no safe budget among `left`, nothing is looked at.
        let open = BTreeMap::from([("media".to_owned(), dec!(0))]);
        assert_eq!(book.admit(&open, &jobs), AdmissionPlan::default());
    }

    /// GIVEN a job already STARTING (its worst case 5) submitted after a waiting one (3),
    /// with 7 left WHEN admitted THEN the starting job takes its 5 first and is never refused,
    /// even over what is left, and the older waiting job no longer fits.
    #[test]
    fn a_starting_job_takes_its_worst_case_first_and_is_never_refused() {
        let book = book();
        let genomics = [("team".to_owned(), "genomics".to_owned())];
        let facets = JobFacets {
            queue: "shared",
            compute_environment: None,
            job_definition: "align",
            tags: &genomics,
        };
        let job = |job_id, created, usd, starting| Waiting {
            job_id,
            facets,
            created_at_ms: Some(created),
            worst: WorstCase::Bounded { usd },
            starting,
        };
        let left = BTreeMap::from([("genomics".to_owned(), dec!(7))]);
        let plan = book.admit(
            &left,
            &[
                job("waiting", 1, dec!(3), false),
                job("starting", 2, dec!(5), true),
            ],
        );
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.job_id.as_str()).collect();
        assert_eq!(refused, ["waiting"]);
        assert_eq!(plan.refused[0].left_usd, dec!(2));
        let over = BTreeMap::from([("genomics".to_owned(), dec!(1))]);
        assert!(
            book.admit(&over, &[job("starting", 2, dec!(5), true)])
                .refused
                .is_empty()
        );
    }
}
