//! Unit pricing: what a billing unit is (times, size, platform, the scopes it counts in) and
//! its hourly rate — a Fargate task from the price table, an EC2 share from its instance's.

use rust_decimal::Decimal;

use super::entities::{InstanceState, State};
use super::output::UNATTRIBUTED;
use super::output::UNKNOWN;
use super::scopes::ScopeKey;
use crate::core::billing::{self, Billing};
use crate::core::budgets::JobFacets;
use crate::core::facts::{Architecture, Capacity, Millis, OperatingSystem, Platform, TaskSize};
use crate::core::names;
use crate::core::prices::Unpriced;
use crate::core::split::{Resources, SplitBasis, reserved_share};

/// Decimal places of an EC2 share's hourly rate (a trillionth of a dollar per hour).
pub const SHARE_RATE_DECIMAL_PLACES: u32 = 12;

impl State {
    /// `period` when it is not the ledger's: a budget of that period is summed by its own.
    fn other_period(
        &self,
        period: crate::core::budget::BudgetPeriod,
    ) -> Option<crate::core::budget::BudgetPeriod> {
        (period != self.period).then_some(period)
    }

    /// The budgets counting the whole bill whose period is not the ledger's: the total is
    /// bucketed by the ledger's period, so they are summed wherever the total is, by their own.
    fn whole_bill_keys(&self) -> impl Iterator<Item = ScopeKey<'_>> {
        self.budgets
            .iter()
            .flat_map(|book| book.budgets())
            .filter(|spec| spec.counts_the_bill() && spec.period != self.period)
            .map(|spec| ScopeKey::Budget(spec.name.as_str(), Some(spec.period)))
    }

    pub(super) fn attempt_input(&self, job_idx: u32, attempt_index: u32) -> Option<UnitInput<'_>> {
        let job = &self.jobs[job_idx as usize];
        let attempt = job
            .attempts
            .binary_search_by_key(&attempt_index, |(index, _)| *index)
            .ok()
            .map(|position| &job.attempts[position].1)?;
        let task_arn = attempt.task_arn.get();
        if let Some(arn) = task_arn {
            // Another attempt claims this task first: it is billed there, not twice.
            if self.owner_of(arn) != Some((job.job_id.as_str(), attempt_index)) {
                return None;
            }
        }
        let task = task_arn
            .and_then(|arn| self.task_index.get(arn))
            .map(|&idx| &self.tasks[idx as usize]);
        let head = job.head.get();
        let mut estimated = false;

        let platform = task
            .and_then(|t| t.platform.get())
            .or(job.platform.get())
            .copied()
            // Batch's default platform capability is EC2.
            .unwrap_or(Platform::Ec2);

        // Fargate bills from the image pull; without ECS data, Batch's attempt start
        // (which leaves the pull out) is the best we have.
        let exact_start = task.and_then(|t| t.pull_started_at);
        let start = exact_start
            .or_else(|| task.and_then(|t| t.started_at))
            .or(attempt.started_at);
        estimated |= exact_start.is_none() && start.is_some();
        let exact_stop = task.and_then(|t| t.stopped_at);
        // A job AWS Batch no longer knows ends at the last instant anything said about it
        // (its facts, its task's); any stop AWS reported wins.
        let abandoned = job.abandoned.then(|| {
            [
                job.last_seen,
                start,
                task.and_then(|t| t.pull_stopped_at),
                task.and_then(|t| t.started_at),
            ]
            .into_iter()
            .flatten()
            .max()
        });
        let stop = exact_stop.or(attempt.stopped_at).or(abandoned.flatten());
        estimated |= exact_stop.is_none() && stop.is_some();

        let task_size = task.and_then(|t| t.size.get()).copied();
        let size = task_size.or(job.size.get().copied());
        // On EC2 the job's requested size is the reservation itself, not an estimate of it.
        estimated |= task_size.is_none() && size.is_some() && platform == Platform::Fargate;
        let architecture = task
            .and_then(|t| t.architecture.get())
            .or(job.architecture.get())
            .copied()
            .unwrap_or(Architecture::X86_64);
        let task_capacity = task.and_then(|t| t.capacity.get()).copied();
        let capacity = task_capacity.unwrap_or(Capacity::OnDemand);
        let region = task
            .and_then(|t| t.region.get())
            .or(job.region.get())
            .map(String::as_str);

        let compute_environment = task
            .and_then(|t| t.compute_environment.get().map(String::as_str))
            .or_else(|| {
                task_arn
                    .and_then(|arn| names::cluster_of_task_arn(arn))
                    .and_then(names::compute_environment_of_cluster)
            })
            .unwrap_or(UNKNOWN);

        let operating_system = task
            .and_then(|t| t.operating_system.get())
            .or(job.operating_system.get())
            .copied();
        let (instance, priced) = match platform {
            Platform::Ec2 => {
                let instance_arn = task
                    .and_then(|t| t.container_instance_arn.get())
                    .or(attempt.container_instance_arn.get());
                self.ec2_share(instance_arn.map(String::as_str), size.as_ref())
            }
            Platform::Eks => (None, Err(Unpriced::EksNode)),
            Platform::Fargate if operating_system == Some(OperatingSystem::Windows) => {
                (None, Err(Unpriced::WindowsOnFargate))
            }
            Platform::Fargate => {
                // Batch events do not say Spot or on-demand: assume on-demand, the higher
                // price, so an estimate errs on the side of stopping early.
                estimated |= task_capacity.is_none();
                (
                    None,
                    self.fargate_price(region, size.as_ref(), architecture, capacity),
                )
            }
        };
        let compute_environment = instance
            .and_then(|i| self.instances[i as usize].compute_environment.get())
            .map_or(compute_environment, String::as_str);
        let mut scopes = vec![
            ScopeKey::Queue(head.map_or(UNKNOWN, |h| h.queue.as_str())),
            ScopeKey::JobDefinition(head.map_or(UNKNOWN, |h| h.job_definition.as_str())),
        ];
        if let Some(tags) = job.tags.get() {
            scopes.extend(
                tags.iter()
                    .filter(|(k, _)| self.tag_scopes.allows(k))
                    .map(|(k, v)| ScopeKey::Tag(k.as_str(), v.as_str())),
            );
        }
        if let Some(book) = &self.budgets {
            let facets = JobFacets {
                queue: head.map_or(UNKNOWN, |h| h.queue.as_str()),
                compute_environment: Some(compute_environment),
                job_definition: head.map_or(UNKNOWN, |h| h.job_definition.as_str()),
                tags: job.tags.get().map_or(&[], Vec::as_slice),
            };
            scopes.extend(book.budgets_of(&facets).into_iter().filter_map(|name| {
                let spec = book.get(name)?;
                (!spec.counts_the_bill())
                    .then(|| ScopeKey::Budget(name, self.other_period(spec.period)))
            }));
        }
        // The total and the compute environment count what AWS bills: Fargate tasks and EC2
        // instances. A priced EC2 share is part of its instance's bill, already counted there;
        // an unpriced one is listed so the total shows what it cannot price.
        if platform == Platform::Fargate || priced.is_err() {
            scopes.extend([
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(compute_environment),
            ]);
            scopes.extend(self.whole_bill_keys());
        }
        // Batch terminates the attempt `timeout` after its `startedAt`; what it still runs is
        // committed to at most that second and the stop's grace (`billing::deadline`).
        let deadline = job
            .timeout
            .get()
            .zip(attempt.started_at)
            .map(|(&timeout, started)| billing::deadline(started, timeout));
        Some(UnitInput {
            scopes,
            timing: Timing { start, stop },
            deadline,
            size,
            estimated: estimated && priced.is_ok(),
            priced,
            instance,
            platform,
            compute_environment: (compute_environment != UNKNOWN).then_some(compute_environment),
        })
    }

    /// A task's share of its EC2 instance's price, as AWS split cost allocation data splits
    /// it (`core::split`): the instance's hourly price × Σ weight × reserved / Σ weight ×
    /// available, the type's vCPUs, memory and GPUs available (the registered ones, and the
    /// share estimated, when the price table does not know the type).
    pub(super) fn ec2_share(
        &self,
        instance_arn: Option<&str>,
        size: Option<&TaskSize>,
    ) -> (Option<u32>, Result<Priced, Unpriced>) {
        let Some(idx) = instance_arn
            .and_then(|arn| self.instance_index.get(arn))
            .copied()
        else {
            return (None, Err(Unpriced::UnknownInstance));
        };
        let instance = &self.instances[idx as usize];
        let priced = (|| {
            let (price, specs) = self.instance_price(instance)?;
            let size = size.ok_or(Unpriced::UnknownSize)?;
            let basis = Self::split_basis_of(instance, specs)?;
            let (available, capacity_estimated) = (basis.available, basis.from_registered);
            let reserved = Resources {
                vcpu: size.vcpu,
                memory_gib: size.memory_gib,
                gpus: Decimal::from(size.gpus.unwrap_or(0)),
            };
            // Rounded down to 10⁻¹² USD/hour: a share of 7.5 GiB is a repeating decimal, sums
            // of rates stored as fixed point (the DynamoDB projections) must stay exact, and
            // rounding down keeps Σ shares within the instance's price.
            let share = |hourly: Decimal| {
                reserved_share(hourly, &available, &reserved).round_dp_with_strategy(
                    SHARE_RATE_DECIMAL_PLACES,
                    rust_decimal::RoundingStrategy::ToZero,
                )
            };
            Ok(Priced {
                rate: share(price.rate),
                on_demand_rate: share(price.on_demand_rate),
                estimated: price.estimated || capacity_estimated,
            })
        })();
        (Some(idx), priced)
    }

    /// What an instance's bill is split by: the type's vCPUs, memory and GPUs when the price
    /// table knows them, else what the container instance registered.
    pub(super) fn split_basis_of(
        instance: &InstanceState,
        specs: Option<Resources>,
    ) -> Result<SplitBasis, Unpriced> {
        match specs {
            Some(specs) => Ok(SplitBasis::new(specs, false)),
            None => {
                let registered = instance.registered.get().ok_or(Unpriced::UnknownInstance)?;
                let registered = Resources {
                    vcpu: registered.vcpu,
                    memory_gib: registered.memory_gib,
                    gpus: Decimal::ZERO,
                };
                Ok(SplitBasis::new(registered, true))
            }
        }
    }

    /// What an instance's bill is split by, when its price is known.
    pub(super) fn split_basis(&self, instance: &InstanceState) -> Option<SplitBasis> {
        let (_, specs) = self.instance_price(instance).ok()?;
        Self::split_basis_of(instance, specs).ok()
    }

    /// The instance's hourly price, and what its type offers when the table knows it.
    pub(super) fn instance_price(
        &self,
        instance: &InstanceState,
    ) -> Result<(Priced, Option<Resources>), Unpriced> {
        let region = instance.region.get().ok_or(Unpriced::UnknownRegion)?;
        let instance_type = instance
            .instance_type
            .get()
            .ok_or(Unpriced::UnknownInstanceType)?;
        let spot = instance
            .compute_environment
            .get()
            .is_some_and(|ce| self.prices.is_spot_compute_environment(ce));
        let price = self.prices.ec2(region, instance_type, spot)?;
        let priced = Priced {
            rate: price.hourly,
            on_demand_rate: price.on_demand_hourly,
            estimated: price.estimated,
        };
        Ok((priced, price.specs))
    }

    pub(super) fn instance_input(&self, idx: u32) -> UnitInput<'_> {
        let instance = &self.instances[idx as usize];
        let compute_environment = instance
            .compute_environment
            .get()
            .map_or(UNKNOWN, String::as_str);
        UnitInput {
            scopes: [
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(compute_environment),
            ]
            .into_iter()
            .chain(self.whole_bill_keys())
            .collect(),
            timing: Timing {
                start: instance.registered_at.or(instance.first_seen),
                stop: instance.gone_at,
            },
            deadline: None,
            size: instance.registered.get().map(|r| TaskSize {
                vcpu: r.vcpu,
                memory_gib: r.memory_gib,
                storage_gib: None,
                gpus: None,
            }),
            estimated: false,
            priced: self.instance_price(instance).map(|(priced, _)| priced),
            instance: Some(idx),
            platform: Platform::Ec2,
            compute_environment: instance.compute_environment.get().map(String::as_str),
        }
    }

    pub(super) fn unattributed_input(&self, task_idx: u32) -> Option<UnitInput<'_>> {
        let task = &self.tasks[task_idx as usize];
        if self.claims.contains_key(&task.task_arn) {
            return None; // billed through its attempt
        }
        let exact_start = task.pull_started_at;
        let start = exact_start.or(task.started_at);
        let estimated = exact_start.is_none() && start.is_some();
        let size = task.size.get().copied();
        let platform = task.platform.get().copied().unwrap_or(Platform::Fargate);
        let windows = task.operating_system.get() == Some(&OperatingSystem::Windows);
        let (instance, priced) = if platform == Platform::Ec2 {
            self.ec2_share(
                task.container_instance_arn.get().map(String::as_str),
                size.as_ref(),
            )
        } else if windows {
            (None, Err(Unpriced::WindowsOnFargate))
        } else {
            (
                None,
                self.fargate_price(
                    task.region.get().map(String::as_str),
                    size.as_ref(),
                    task.architecture
                        .get()
                        .copied()
                        .unwrap_or(Architecture::X86_64),
                    task.capacity.get().copied().unwrap_or(Capacity::OnDemand),
                ),
            )
        };
        let mut scopes = vec![
            ScopeKey::Queue(UNATTRIBUTED),
            ScopeKey::JobDefinition(task.family.get().map_or(UNATTRIBUTED, String::as_str)),
        ];
        if platform == Platform::Fargate || priced.is_err() {
            scopes.extend([
                ScopeKey::Total,
                ScopeKey::ComputeEnvironment(
                    task.compute_environment
                        .get()
                        .map_or(UNKNOWN, String::as_str),
                ),
            ]);
            scopes.extend(self.whole_bill_keys());
        }
        Some(UnitInput {
            scopes,
            timing: Timing {
                start,
                stop: task.stopped_at,
            },
            deadline: None,
            size,
            estimated: estimated && priced.is_ok(),
            priced,
            instance,
            platform,
            compute_environment: task.compute_environment.get().map(String::as_str),
        })
    }

    pub(super) fn fargate_price(
        &self,
        region: Option<&str>,
        size: Option<&TaskSize>,
        architecture: Architecture,
        capacity: Capacity,
    ) -> Result<Priced, Unpriced> {
        let size = size.ok_or(Unpriced::UnknownSize)?;
        let region = region.ok_or(Unpriced::UnknownRegion)?;
        let rates = self.prices.fargate(region, architecture, capacity)?;
        let on_demand_rate = match capacity {
            Capacity::OnDemand => rates.hourly(size),
            Capacity::Spot => self
                .prices
                .fargate(region, architecture, Capacity::OnDemand)
                .map_or(rates.hourly(size), |on_demand| on_demand.hourly(size)),
        };
        Ok(Priced {
            rate: rates.hourly(size),
            on_demand_rate,
            estimated: false,
        })
    }
}

pub(super) struct Timing {
    pub(super) start: Option<Millis>,
    pub(super) stop: Option<Millis>,
}

impl Timing {
    pub(super) fn billing(&self, hourly_rate: Decimal) -> Billing {
        match (self.start, self.stop) {
            (None, _) => Billing::NotStarted,
            (Some(start), None) => Billing::Running {
                anchor: billing::anchor_seconds(start),
                hourly_rate,
            },
            (Some(start), Some(stop)) => Billing::Closed {
                anchor: billing::anchor_seconds(start),
                stop,
                billed_seconds: billing::billed_seconds_closed(start, stop),
                hourly_rate,
            },
        }
    }
}

pub(super) struct UnitInput<'a> {
    pub(super) scopes: Vec<ScopeKey<'a>>,
    pub(super) timing: Timing,
    /// The last second it may run, when its job has a timeout.
    pub(super) deadline: Option<i64>,
    pub(super) size: Option<TaskSize>,
    pub(super) estimated: bool,
    pub(super) priced: Result<Priced, Unpriced>,
    pub(super) instance: Option<u32>,
    pub(super) platform: Platform,
    /// Where it runs, when the events said (its task's cluster, its instance's registration).
    pub(super) compute_environment: Option<&'a str>,
}

/// A unit's hourly rate, what the same work costs on-demand, and whether the rate is a guess.
pub(super) struct Priced {
    pub(super) rate: Decimal,
    pub(super) on_demand_rate: Decimal,
    pub(super) estimated: bool,
}
