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
//! An EC2 job's price is its share of an instance not chosen yet: its worst case is its share
//! on the costliest instance type its queue's compute environments may launch
//! ([`ec2_hourly_bound`]), when the enforcer has read them ([`Ec2Placement`]). A job without a
//! timeout, or without a price, has no bound: it is admitted, and named as such (never
//! cancelled on a guess). The image pull before `startedAt` is billed on Fargate too and is
//! not bounded by the timeout; it is not in the worst case.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

use super::billing::{self, SECONDS_PER_HOUR, STOP_GRACE_SECONDS};
use super::budgets::{Admission, BudgetBook, JobFacets};
use super::facts::{Architecture, Capacity, OperatingSystem, Platform, TaskSize};
use super::prices::PriceTable;
use super::split::{Resources, reserved_share};

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
    /// At most this many USD of a share of EC2 instances (`ec2_hourly_bound`): a bound for a
    /// budget that counts its jobs' costs, not for one that counts the whole bill, which pays
    /// for whole instances, idle time included (`BudgetSpec::counts_the_bill`): a job that has
    /// Batch launch an instance adds all of it there.
    Share { usd: Decimal },
    /// No timeout: it may run for ever.
    NoTimeout,
    /// Its price is not known before it runs (EC2 where its instances are not known or not in
    /// the price table, EKS, Windows, an unknown size or region).
    Unpriced { why: String },
}

/// Where an EC2 job may be placed, as the enforcer read it from Batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ec2Placement {
    /// `computeResources.instanceTypes` of every compute environment of the job's queue, as
    /// Batch names them: types (`c5.large`), families (`c5`) and keywords (`optimal`,
    /// `default_x86_64`, `default_arm64`).
    InstanceTypes(Vec<String>),
    /// Not known, and why (the compute environments could not be described, or one of them
    /// does not say what it launches: an unmanaged one).
    Unknown(String),
}

/// The instance families AWS Batch chooses from for an `instanceTypes` keyword, from the AWS
/// Batch API Reference, `ComputeResource`, `instanceTypes`
/// (<https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html>):
/// `optimal` selects "from the c4, m4, r4, c5, m5, and r5 instance families", and since
/// 2025-11-01 behaves as `default_x86_64` ("your instance families could be updated to a newer
/// generation"), so both sets are taken; `default_x86_64` "from the m6i, c6i, r6i, and c7i
/// instance families"; `default_arm64` "from the m6g, c6g, r6g, and c7g instance families".
pub fn keyword_families(entry: &str) -> Option<&'static [&'static str]> {
    match entry {
        "optimal" => Some(&[
            "c4", "m4", "r4", "c5", "m5", "r5", "m6i", "c6i", "r6i", "c7i",
        ]),
        "default_x86_64" => Some(&["m6i", "c6i", "r6i", "c7i"]),
        "default_arm64" => Some(&["m6g", "c6g", "r6g", "c7g"]),
        _ => None,
    }
}

/// The most an hour of a job of `size` can cost on EC2 when its compute environments may
/// launch `instance_types`: its split-cost share (`core::split::reserved_share`, the share the
/// ledger charges it) on the costliest instance it may be placed on, at on-demand prices (a
/// Spot instance costs less). A type named whole counts where the job fits it. A family (and
/// each family of a keyword) counts by every size of it the price table has, fit or not:
/// within a family AWS prices a size in proportion to its resources, so every size has the
/// same price per weighted resource and a larger size missing from the table gives the same
/// share (a test checks this of the built-in table). A family or type the table does not
/// price in `region` leaves the job without a bound, named.
pub fn ec2_hourly_bound(
    size: &TaskSize,
    instance_types: &[String],
    prices: &PriceTable,
    region: &str,
) -> Result<Decimal, String> {
    let reserved = Resources {
        vcpu: size.vcpu,
        memory_gib: size.memory_gib,
        gpus: Decimal::from(size.gpus.unwrap_or(0)),
    };
    let mut families: BTreeSet<&str> = BTreeSet::new();
    let mut named: BTreeSet<&str> = BTreeSet::new();
    for entry in instance_types {
        match keyword_families(entry) {
            Some(list) => families.extend(list.iter().copied()),
            None if entry.contains('.') => {
                named.insert(entry);
            }
            None => {
                families.insert(entry);
            }
        }
    }
    let offers: Vec<(&str, Decimal, Option<Resources>)> = prices.ec2_offers(region).collect();
    let no_specs = |instance_type: &str| {
        format!(
            "the price table has no vCPUs and memory for {instance_type} (add them to the price file)"
        )
    };
    let mut bound: Option<Decimal> = None;
    for family in families {
        let mut priced = false;
        for (instance_type, price, specs) in offers
            .iter()
            .filter(|(instance_type, ..)| instance_type.split('.').next() == Some(family))
        {
            let specs = specs.ok_or_else(|| no_specs(instance_type))?;
            let share = reserved_share(*price, &specs, &reserved);
            bound = Some(bound.map_or(share, |held| held.max(share)));
            priced = true;
        }
        if !priced {
            return Err(format!(
                "its compute environments may launch {family} instances, which the price table does not price in {region} (add them to the price file)"
            ));
        }
    }
    for instance_type in named {
        let (_, price, specs) = offers
            .iter()
            .find(|(offered, ..)| *offered == instance_type)
            .ok_or_else(|| {
                format!(
                    "its compute environments may launch {instance_type}, which the price table does not price in {region} (add it to the price file)"
                )
            })?;
        let specs = specs.ok_or_else(|| no_specs(instance_type))?;
        let fits = reserved.vcpu <= specs.vcpu
            && reserved.memory_gib <= specs.memory_gib
            && reserved.gpus <= specs.gpus;
        if fits {
            let share = reserved_share(*price, &specs, &reserved);
            bound = Some(bound.map_or(share, |held| held.max(share)));
        }
    }
    bound.ok_or_else(|| {
        if instance_types.is_empty() {
            "its compute environments name no instance types".to_owned()
        } else {
            "it fits none of the instance types its compute environments may launch".to_owned()
        }
    })
}

/// The worst case of a job of `shape` in `region`; `placement` is where an EC2 job may be
/// placed (`None`: not read, and an EC2 job is then without a bound).
pub fn worst_case(
    shape: &JobShape,
    prices: &PriceTable,
    region: &str,
    placement: Option<&Ec2Placement>,
) -> WorstCase {
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
    let windows = shape.operating_system == Some(OperatingSystem::Windows);
    let mut share = false;
    let hourly = match shape.platform {
        Some(Platform::Fargate) => {
            if windows {
                return unpriced("Windows on Fargate is not priced");
            }
            let Some(size) = shape.size else {
                return unpriced("Batch's answer did not give the job's vCPU and memory");
            };
            let architecture = shape.architecture.unwrap_or(Architecture::X86_64);
            match prices.fargate(region, architecture, Capacity::OnDemand) {
                Ok(rates) => rates.hourly(&size),
                Err(why) => return unpriced(&why.to_string()),
            }
        }
        Some(Platform::Ec2) => {
            if windows {
                return unpriced("Windows on EC2 is not priced (the price table is Linux's)");
            }
            let Some(size) = shape.size else {
                return unpriced("Batch's answer did not give the job's vCPU and memory");
            };
            match placement {
                None => {
                    return unpriced(
                        "an EC2 job's price is its share of an instance not yet chosen",
                    );
                }
                Some(Ec2Placement::Unknown(why)) => return unpriced(why),
                Some(Ec2Placement::InstanceTypes(types)) => {
                    match ec2_hourly_bound(&size, types, prices, region) {
                        Ok(hourly) => {
                            share = true;
                            hourly
                        }
                        Err(why) => return unpriced(&why),
                    }
                }
            }
        }
        Some(Platform::Eks) => return unpriced("a job on EKS is not priced"),
        None => return unpriced("Batch's answer did not name the job's platform"),
    };
    let seconds = (i64::from(timeout) + STOP_GRACE_SECONDS).max(billing::MINIMUM_BILLED_SECONDS);
    // Each child of an array, and each attempt a retry strategy allows: AWS's guide says the
    // timeout starts over for a new attempt
    // (https://docs.aws.amazon.com/batch/latest/userguide/job_timeouts.html).
    let copies = Decimal::from(shape.array_size.unwrap_or(1).max(1))
        * Decimal::from(shape.attempts.unwrap_or(1).clamp(1, 10));
    match hourly
        .checked_mul(Decimal::from(seconds))
        .and_then(|numerator| numerator.checked_mul(copies))
    {
        Some(numerator) if share => WorstCase::Share {
            usd: numerator / Decimal::from(SECONDS_PER_HOUR),
        },
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
    /// Jobs of a safe budget admitted without a bound, and why (no timeout, no price, or an
    /// EC2 share in a budget counting the whole bill).
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
            let mut safe: Vec<&str> = self
                .budgets_of(&job.facets)
                .into_iter()
                .filter(|name| left.contains_key(name))
                .collect();
            if safe.is_empty() {
                continue;
            }
            // A budget counting the whole bill pays for whole instances: an EC2 job's share
            // bounds nothing there, so it is judged by the other safe budgets alone, and named
            // as unbounded for those when it is not refused.
            let mut whole_bill = None;
            let worst = match &job.worst {
                WorstCase::Bounded { usd } => *usd,
                WorstCase::Share { usd } => {
                    let (bill, jobs): (Vec<&str>, Vec<&str>) = safe.iter().partition(|name| {
                        self.get(name).is_some_and(|spec| spec.counts_the_bill())
                    });
                    if !bill.is_empty() {
                        whole_bill = Some((
                            job.job_id.to_owned(),
                            format!(
                                "budget {} counts whole EC2 instances, idle time included, which an EC2 job's share does not bound",
                                bill.join(", ")
                            ),
                        ));
                    }
                    if jobs.is_empty() {
                        plan.unbounded.extend(whole_bill);
                        continue;
                    }
                    safe = jobs;
                    *usd
                }
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
            plan.unbounded.extend(whole_bill);
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
            None,
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
            worst_case(&array, &PriceTable::builtin(), "us-east-1", None),
            WorstCase::Bounded {
                usd: rate * dec!(3630) * dec!(10) / dec!(3600)
            }
        );
        array.attempts = Some(3);
        assert_eq!(
            worst_case(&array, &PriceTable::builtin(), "us-east-1", None),
            WorstCase::Bounded {
                usd: rate * dec!(3630) * dec!(30) / dec!(3600)
            }
        );
        // An array already running is never judged (cancelling it would cancel the rest).
        array.array_started = true;
        assert!(matches!(
            worst_case(&array, &PriceTable::builtin(), "us-east-1", None),
            WorstCase::Unpriced { why } if why.contains("started")
        ));
    }

    #[test]
    fn jobs_without_a_bound_say_why() {
        let prices = PriceTable::builtin();
        assert_eq!(
            worst_case(&fargate(dec!(1), dec!(2), None), &prices, "us-east-1", None),
            WorstCase::NoTimeout
        );
        let mut ec2 = fargate(dec!(1), dec!(2), Some(600));
        ec2.platform = Some(Platform::Ec2);
        assert!(matches!(
            worst_case(&ec2, &prices, "us-east-1", None),
            WorstCase::Unpriced { why } if why.contains("EC2")
        ));
        let mut unknown = fargate(dec!(1), dec!(2), Some(600));
        unknown.platform = None;
        assert!(matches!(
            worst_case(&unknown, &prices, "us-east-1", None),
            WorstCase::Unpriced { why } if why.contains("platform")
        ));
    }

    fn ec2(vcpu: Decimal, memory_gib: Decimal, gpus: Option<u32>) -> JobShape {
        let mut job = fargate(vcpu, memory_gib, Some(3600));
        job.platform = Some(Platform::Ec2);
        if let Some(size) = job.size.as_mut() {
            size.gpus = gpus;
        }
        job
    }

    fn placed(types: &[&str]) -> Ec2Placement {
        Ec2Placement::InstanceTypes(types.iter().map(|t| (*t).to_owned()).collect())
    }

    /// The bound, to 20 places: the same figure divided in another order may differ in the
    /// 28th digit.
    fn bounded(worst: WorstCase) -> Decimal {
        match worst {
            WorstCase::Share { usd } => usd.round_dp(20),
            other => panic!("not an EC2 share: {other:?}"),
        }
    }

    #[test]
    fn an_ec2_jobs_worst_case_is_its_share_on_the_costliest_instance_it_may_be_placed_on() {
        let prices = PriceTable::builtin();
        let hour = |rate: Decimal| (rate * dec!(3630) / dec!(3600)).round_dp(20);
        // The built-in table's us-east-1 prices: m5.large $0.096 (2 vCPU, 8 GiB), c5.large
        // $0.085 (2 vCPU, 4 GiB). A 1 vCPU / 2 GiB job's split-cost share weighs 9 × 1 + 2 = 11
        // of an m5.large's 9 × 2 + 8 = 26, of a c5.large's 22: the c5 is the costlier place.
        let job = ec2(dec!(1), dec!(2), None);
        let m5 = dec!(0.096) * dec!(11) / dec!(26);
        let c5 = dec!(0.085) * dec!(11) / dec!(22);
        assert!(c5 > m5);
        assert_eq!(
            bounded(worst_case(
                &job,
                &prices,
                "us-east-1",
                Some(&placed(&["m5"]))
            )),
            hour(m5)
        );
        assert_eq!(
            bounded(worst_case(
                &job,
                &prices,
                "us-east-1",
                Some(&placed(&["m5", "c5"]))
            )),
            hour(c5)
        );
        // A type named whole counts where the job fits: 4 vCPU do not fit a c5.large.
        let big = ec2(dec!(4), dec!(8), None);
        assert_eq!(
            bounded(worst_case(
                &big,
                &prices,
                "us-east-1",
                Some(&placed(&["c5.large", "m5.xlarge"]))
            )),
            hour(dec!(0.192) * dec!(44) / dec!(52))
        );
        assert!(matches!(
            worst_case(&big, &prices, "us-east-1", Some(&placed(&["c5.large"]))),
            WorstCase::Unpriced { why } if why.contains("fits none")
        ));
        // A family counts by its sizes, a large job too: its share on a size big enough is
        // priced alike (the next test).
        assert_eq!(
            bounded(worst_case(
                &big,
                &prices,
                "us-east-1",
                Some(&placed(&["c5"]))
            )),
            hour(dec!(0.085) * dec!(44) / dec!(22))
        );
        // GPUs weigh 9, vCPUs 0.9 and memory 0.1 on an instance that has them; the g5
        // family's costliest size per weighted resource in the table is g5.xlarge ($1.006,
        // 4 vCPU, 16 GiB, 1 GPU).
        let gpu = ec2(dec!(4), dec!(16), Some(1));
        assert_eq!(
            bounded(worst_case(
                &gpu,
                &prices,
                "us-east-1",
                Some(&placed(&["g5"]))
            )),
            hour(dec!(1.006))
        );
        // An array of 10: each child may run its timeout, as on Fargate.
        let mut array = job;
        array.array_size = Some(10);
        assert_eq!(
            bounded(worst_case(
                &array,
                &prices,
                "us-east-1",
                Some(&placed(&["c5"]))
            )),
            hour(c5 * dec!(10))
        );
    }

    #[test]
    fn batchs_keywords_stand_for_their_families_and_an_unpriced_family_is_named() {
        let job = ec2(dec!(1), dec!(2), None);
        // `optimal` takes c4, m4 and r4 too (AWS's API reference): the built-in table does
        // not price them, so the job has no bound, and the reason names the first missing.
        let prices = PriceTable::builtin();
        assert!(matches!(
            worst_case(&job, &prices, "us-east-1", Some(&placed(&["optimal"]))),
            WorstCase::Unpriced { why } if why.contains("c4 instances") && why.contains("price file")
        ));
        // A user's price file with the families `optimal` may launch: the costliest share
        // bounds the job (here the c4.large's 2 vCPU / 3.75 GiB at 0.10 USD an hour).
        let mut prices = PriceTable::builtin();
        let entry = |t: &str, price: &str, vcpu: u32, gib: &str| {
            format!(
                "[[ec2]]\nregion = \"us-east-1\"\ninstance_type = \"{t}\"\non_demand_hour = \"{price}\"\nvcpu = {vcpu}\nmemory_gib = \"{gib}\"\n"
            )
        };
        let file = [
            entry("c4.large", "0.10", 2, "3.75"),
            entry("m4.large", "0.10", 2, "8"),
            entry("r4.large", "0.133", 2, "15.25"),
            entry("r6i.large", "0.126", 2, "16"),
            entry("c7i.large", "0.08925", 2, "4"),
        ]
        .concat();
        prices.merge_toml(&file).unwrap();
        let c4 = dec!(0.10) * dec!(11) / dec!(21.75);
        assert_eq!(
            bounded(worst_case(
                &job,
                &prices,
                "us-east-1",
                Some(&placed(&["optimal"]))
            )),
            (c4 * dec!(3630) / dec!(3600)).round_dp(20)
        );
        // `default_arm64`: m6g, c6g, r6g and c7g; the built-in table has no c7g.
        assert!(matches!(
            worst_case(&job, &PriceTable::builtin(), "us-east-1", Some(&placed(&["default_arm64"]))),
            WorstCase::Unpriced { why } if why.contains("c7g")
        ));
        // A region the table does not price, a type it does not know, a placement not read.
        assert!(matches!(
            worst_case(&job, &prices, "eu-west-1", Some(&placed(&["m5"]))),
            WorstCase::Unpriced { why } if why.contains("eu-west-1")
        ));
        assert!(matches!(
            worst_case(&job, &prices, "us-east-1", Some(&placed(&["x2iedn.large"]))),
            WorstCase::Unpriced { why } if why.contains("x2iedn.large")
        ));
        let unknown = Ec2Placement::Unknown("compute environment ce is not known to Batch".into());
        assert!(matches!(
            worst_case(&job, &prices, "us-east-1", Some(&unknown)),
            WorstCase::Unpriced { why } if why.contains("not known to Batch")
        ));
        let mut windows = job;
        windows.operating_system = Some(OperatingSystem::Windows);
        assert!(matches!(
            worst_case(&windows, &prices, "us-east-1", Some(&placed(&["m5"]))),
            WorstCase::Unpriced { why } if why.contains("Windows")
        ));
    }

    /// A family's bound takes its sizes in the price table: sound for the sizes it lacks when
    /// AWS prices a family's sizes in proportion to their resources (the same price per
    /// weighted resource), as every CPU family of the built-in table is; where it does not
    /// (GPU families), the smallest size is the costliest per weighted resource, and it is in
    /// the table.
    #[test]
    fn the_builtin_tables_families_are_priced_in_proportion_or_costliest_at_their_smallest() {
        let prices = PriceTable::builtin();
        let mut families: BTreeMap<&str, Vec<(Decimal, Decimal)>> = BTreeMap::new();
        let offers: Vec<_> = prices.ec2_offers("us-east-1").collect();
        assert!(offers.len() > 20);
        for (instance_type, price, specs) in &offers {
            let specs = specs.unwrap();
            let family = instance_type.split('.').next().unwrap();
            let per_weight = crate::core::split::unit_cost(*price, &specs);
            families
                .entry(family)
                .or_default()
                .push((specs.vcpu, per_weight));
        }
        for (family, mut sizes) in families {
            sizes.sort();
            let gpus = offers.iter().any(|(t, _, specs)| {
                t.starts_with(&format!("{family}.")) && specs.unwrap().gpus > Decimal::ZERO
            });
            if gpus {
                let smallest = sizes[0].1;
                assert!(
                    sizes.iter().all(|(_, per_weight)| *per_weight <= smallest),
                    "{family}: {sizes:?}"
                );
            } else {
                assert!(
                    sizes
                        .iter()
                        .all(|(_, per_weight)| *per_weight == sizes[0].1),
                    "{family}: {sizes:?}"
                );
            }
        }
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

    /// GIVEN org (safe, counting the whole bill) and genomics (safe, counting its jobs) WHEN
    /// genomics' EC2 jobs wait, their worst cases shares of instances THEN genomics judges
    /// them by their shares (the 2-USD one does not fit its 1.5 left, the 1-USD one does, and
    /// takes it), while org, which pays for whole instances, neither refuses them nor takes
    /// their shares, and names why.
    #[test]
    fn an_ec2_jobs_share_bounds_it_in_a_budget_of_jobs_not_in_one_of_the_whole_bill() {
        let book = book();
        assert!(book.get("org").unwrap().counts_the_bill());
        let genomics = [("team".to_owned(), "genomics".to_owned())];
        let facets = JobFacets {
            queue: "shared",
            compute_environment: None,
            job_definition: "align",
            tags: &genomics,
        };
        let share = |job_id, created, usd| Waiting {
            job_id,
            facets,
            created_at_ms: Some(created),
            worst: WorstCase::Share { usd },
            starting: false,
        };
        let left = BTreeMap::from([
            ("org".to_owned(), dec!(0.5)),
            ("genomics".to_owned(), dec!(1.5)),
        ]);
        let plan = book.admit(
            &left,
            &[share("big", 1, dec!(2)), share("fits", 2, dec!(1))],
        );
        assert_eq!(
            plan.refused,
            [Refusal {
                job_id: "big".into(),
                budget: "genomics".into(),
                worst_usd: dec!(2),
                left_usd: dec!(1.5),
            }]
        );
        assert_eq!(plan.left["genomics"], dec!(0.5));
        assert_eq!(plan.left["org"], dec!(0.5), "org takes no share");
        // Only the admitted job is named: the refused one is not admitted at all.
        assert_eq!(plan.unbounded.len(), 1, "{:?}", plan.unbounded);
        assert_eq!(plan.unbounded[0].0, "fits");
        assert!(
            plan.unbounded[0]
                .1
                .starts_with("budget org counts whole EC2 instances"),
            "{:?}",
            plan.unbounded
        );
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
