//! AWS split cost allocation data: how AWS divides one EC2 instance's hourly cost among the
//! ECS tasks (and EKS pods) that ran on it, and what it calls the instance's unused cost.
//!
//! Source: AWS Data Exports user guide, "Example of split cost allocation data"
//! (<https://docs.aws.amazon.com/cur/latest/userguide/example-split-cost-allocation-data.html>)
//! and "Example of split cost allocation data for accelerated instances"
//! (<https://docs.aws.amazon.com/cur/latest/userguide/example-accelerated-instances.html>); the
//! CUR columns in "Split line item details". Both worked examples are tests below.
//!
//! 1. **Unit cost.** Resources are weighted vCPU 9 : memory 1 ("derived from per vCPU per hour
//!    and per GB per hour prices in AWS Fargate"); on an instance with GPUs, GPU 9 : vCPU 0.9 :
//!    memory 0.1. `unit = hourly cost / Σ weight × available`, and a resource-hour costs its
//!    weight × unit.
//! 2. **Allocated** capacity is `max(used, reserved)` per resource (the reservation when usage
//!    is unknown); the instance's **unused** capacity `max(available − Σ allocated, 0)`.
//! 3. **Split usage ratio** `allocated / max(available, Σ allocated)` (an oversubscribed
//!    resource is shared by what was allocated); **unused ratio** `split ratio / (1 − instance
//!    unused ratio)`, 0 when nothing is unused.
//! 4. **Split cost** `Σ ratio × available × cost per resource-hour`; **unused cost** of a task
//!    `Σ unused ratio × instance unused ratio × available × cost per resource-hour`.
//!
//! Σ split costs + the instance's unused cost = the instance's cost, and Σ of the tasks'
//! unused costs = the instance's unused cost. Memory is in GiB, as AWS's examples count it (an
//! m5.xlarge's "16 GB").
//!
//! The ledger knows reservations only (events carry no usage), so its share of a task is the
//! split cost with `allocated = reserved`: a lower bound when a task uses more than it
//! reserved, as AWS then allocates what was used. AWS documents the GPU weighting for EKS
//! pods only; batchguard applies it to ECS tasks on GPU instances too (ADR 0009).

use rust_decimal::Decimal;

/// CPU, memory and accelerators: what an instance offers or a task is allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub vcpu: Decimal,
    /// GiB.
    pub memory_gib: Decimal,
    pub gpus: Decimal,
}

/// The relative weights of a vCPU, a GiB and a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub vcpu: Decimal,
    pub memory_gib: Decimal,
    pub gpu: Decimal,
}

impl Weights {
    /// 9 : 1 for vCPU and memory; GPU 9 : vCPU 0.9 : memory 0.1 on an instance with GPUs.
    pub fn for_instance(available: &Resources) -> Self {
        if available.gpus > Decimal::ZERO {
            Self {
                gpu: Decimal::from(9),
                vcpu: Decimal::new(9, 1),
                memory_gib: Decimal::new(1, 1),
            }
        } else {
            Self {
                gpu: Decimal::ZERO,
                vcpu: Decimal::from(9),
                memory_gib: Decimal::ONE,
            }
        }
    }

    fn of(&self, resources: &Resources) -> Decimal {
        self.vcpu * resources.vcpu
            + self.memory_gib * resources.memory_gib
            + self.gpu * resources.gpus
    }
}

/// What an instance's bill is split by: the resources it offers and their weights, and
/// whether those are the type's (the price table) or, for a type the table does not know,
/// what its container instance registered (then every share is an estimate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitBasis {
    pub available: Resources,
    pub weights: Weights,
    pub from_registered: bool,
}

impl SplitBasis {
    pub fn new(available: Resources, from_registered: bool) -> Self {
        Self {
            available,
            weights: Weights::for_instance(&available),
            from_registered,
        }
    }
}

/// `96 vCPU, 1152 GiB, 8 GPU split GPU 9 : vCPU 0.9 : GiB 0.1`; `(registered)` when the
/// resources are the container instance's, not the type's.
impl std::fmt::Display for SplitBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.available;
        let w = &self.weights;
        write!(
            f,
            "{} vCPU, {} GiB",
            a.vcpu.normalize(),
            a.memory_gib.normalize()
        )?;
        if a.gpus > Decimal::ZERO {
            write!(
                f,
                ", {} GPU split GPU {} : vCPU {} : GiB {}",
                a.gpus.normalize(),
                w.gpu.normalize(),
                w.vcpu.normalize(),
                w.memory_gib.normalize()
            )?;
        } else {
            write!(
                f,
                " split vCPU {} : GiB {}",
                w.vcpu.normalize(),
                w.memory_gib.normalize()
            )?;
        }
        if self.from_registered {
            f.write_str(" (registered)")?;
        }
        Ok(())
    }
}

/// What a task (or pod) was given for the hour: its reservation, and its usage when known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    pub reserved: Resources,
    pub used: Option<Resources>,
}

impl Allocation {
    /// `max(used, reserved)` per resource.
    pub fn allocated(&self) -> Resources {
        let used = self.used.unwrap_or(self.reserved);
        Resources {
            vcpu: used.vcpu.max(self.reserved.vcpu),
            memory_gib: used.memory_gib.max(self.reserved.memory_gib),
            gpus: used.gpus.max(self.reserved.gpus),
        }
    }
}

/// One task's part of an instance-hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSplit {
    pub split_cost: Decimal,
    pub unused_cost: Decimal,
}

/// An instance-hour divided: each task's part, and the instance's unused cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSplit {
    /// Cost of one vCPU-, GiB- and GPU-hour on this instance.
    pub per_hour: Resources,
    pub tasks: Vec<TaskSplit>,
    pub unused_cost: Decimal,
}

/// The unit cost of one resource-hour on an instance of `hourly_cost` offering `available`:
/// `hourly cost / Σ weight × available`; zero for an instance that offers nothing.
pub fn unit_cost(hourly_cost: Decimal, available: &Resources) -> Decimal {
    let weighted = Weights::for_instance(available).of(available);
    if weighted.is_zero() {
        Decimal::ZERO
    } else {
        hourly_cost / weighted
    }
}

/// A reservation's split cost rate on an instance whose resources it does not oversubscribe:
/// `hourly cost × Σ weight × reserved / Σ weight × available`, the split cost of one hour.
pub fn reserved_share(
    hourly_cost: Decimal,
    available: &Resources,
    reserved: &Resources,
) -> Decimal {
    let weights = Weights::for_instance(available);
    let weighted = weights.of(available);
    if weighted.is_zero() {
        Decimal::ZERO
    } else {
        hourly_cost * weights.of(reserved) / weighted
    }
}

/// AWS's split of one instance-hour among `allocations`, step by step as its example does.
pub fn split(
    hourly_cost: Decimal,
    available: &Resources,
    allocations: &[Allocation],
) -> InstanceSplit {
    let weights = Weights::for_instance(available);
    let unit = unit_cost(hourly_cost, available);
    let per_hour = Resources {
        vcpu: weights.vcpu * unit,
        memory_gib: weights.memory_gib * unit,
        gpus: weights.gpu * unit,
    };
    let allocated: Vec<Resources> = allocations.iter().map(Allocation::allocated).collect();
    let total = allocated
        .iter()
        .fold(Resources::default(), |sum, a| Resources {
            vcpu: sum.vcpu + a.vcpu,
            memory_gib: sum.memory_gib + a.memory_gib,
            gpus: sum.gpus + a.gpus,
        });
    // Per resource: (available, Σ allocated, cost of a resource-hour, each task's allocation).
    type PerResource = (Decimal, Decimal, Decimal, fn(&Resources) -> Decimal);
    let resources: [PerResource; 3] = [
        (available.vcpu, total.vcpu, per_hour.vcpu, |r| r.vcpu),
        (
            available.memory_gib,
            total.memory_gib,
            per_hour.memory_gib,
            |r| r.memory_gib,
        ),
        (available.gpus, total.gpus, per_hour.gpus, |r| r.gpus),
    ];
    let mut tasks = vec![
        TaskSplit {
            split_cost: Decimal::ZERO,
            unused_cost: Decimal::ZERO,
        };
        allocations.len()
    ];
    let mut unused_cost = Decimal::ZERO;
    for (available, allocated_total, cost, of) in resources {
        if available.is_zero() {
            continue;
        }
        let unused = (available - allocated_total).max(Decimal::ZERO);
        unused_cost += unused * cost;
        let denominator = available.max(allocated_total);
        let instance_unused_ratio = unused / available;
        for (task, allocation) in tasks.iter_mut().zip(&allocated) {
            let ratio = of(allocation) / denominator;
            task.split_cost += ratio * available * cost;
            if !unused.is_zero() {
                let unused_ratio = ratio / (Decimal::ONE - instance_unused_ratio);
                task.unused_cost += unused_ratio * instance_unused_ratio * available * cost;
            }
        }
    }
    InstanceSplit {
        per_hour,
        tasks,
        unused_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn cents(value: Decimal) -> Decimal {
        value.round_dp(2)
    }

    fn reserved(vcpu: Decimal, memory_gib: Decimal, gpus: Decimal) -> Resources {
        Resources {
            vcpu,
            memory_gib,
            gpus,
        }
    }

    /// AWS's "Example of split cost allocation data": an m5.xlarge (4 vCPU, 16 GB) at $1/hr,
    /// four pods, Pod2 using more vCPU and memory than it reserved. Every figure of its tables,
    /// to the cent.
    #[test]
    fn the_example_of_split_cost_allocation_data() {
        let m5_xlarge = reserved(dec!(4), dec!(16), dec!(0));
        // Step 1: unit cost $1 / (1 × 16 + 9 × 4) = $0.02; a vCPU-hour $0.17, a GB-hour $0.02.
        assert_eq!(cents(unit_cost(dec!(1), &m5_xlarge)), dec!(0.02));
        let pods = [
            // (reserved vCPU, used vCPU, reserved GB, used GB)
            (dec!(1), dec!(0.1), dec!(4), dec!(3)),
            (dec!(1), dec!(1.9), dec!(4), dec!(6)),
            (dec!(1), dec!(0.5), dec!(2), dec!(2)),
            (dec!(1), dec!(0.5), dec!(2), dec!(2)),
        ]
        .map(|(rv, uv, rm, um)| Allocation {
            reserved: reserved(rv, rm, dec!(0)),
            used: Some(reserved(uv, um, dec!(0))),
        });
        let split = split(dec!(1), &m5_xlarge, &pods);
        assert_eq!(cents(split.per_hour.vcpu), dec!(0.17));
        assert_eq!(cents(split.per_hour.memory_gib), dec!(0.02));
        // Step 2: allocated = max(used, reserved): 1, 1.9, 1, 1 vCPU (4.9 in all, 0.9 over
        // the 4 available) and 4, 6, 2, 2 GB (2 GB unused).
        assert_eq!(pods[1].allocated().vcpu, dec!(1.9));
        assert_eq!(pods[1].allocated().memory_gib, dec!(6));
        // Step 4: split, unused and total cost per pod; the unused $0.04; $1 in all.
        let expected = [
            (dec!(0.22), dec!(0.01), dec!(0.23)),
            (dec!(0.38), dec!(0.02), dec!(0.40)),
            (dec!(0.18), dec!(0.01), dec!(0.19)),
            (dec!(0.18), dec!(0.01), dec!(0.19)),
        ];
        for (pod, (split_cost, unused, total)) in split.tasks.iter().zip(expected) {
            assert_eq!(cents(pod.split_cost), split_cost);
            assert_eq!(cents(pod.unused_cost), unused);
            assert_eq!(cents(pod.split_cost + pod.unused_cost), total);
        }
        assert_eq!(cents(split.unused_cost), dec!(0.04));
        let splits: Decimal = split.tasks.iter().map(|t| t.split_cost).sum();
        let unused: Decimal = split.tasks.iter().map(|t| t.unused_cost).sum();
        assert_eq!((splits + split.unused_cost).round_dp(20), dec!(1));
        assert_eq!((unused - split.unused_cost).round_dp(20), dec!(0));
        // Namespace totals, as the example adds its rounded pod totals: $0.42 and $0.59.
        let total = |pod: usize| cents(split.tasks[pod].split_cost + split.tasks[pod].unused_cost);
        let namespace = |a: usize, b: usize| total(a) + total(b);
        assert_eq!(namespace(0, 2), dec!(0.42));
        assert_eq!(namespace(1, 3), dec!(0.59));
    }

    /// AWS's "Example of split cost allocation data for accelerated instances": a p3.16xlarge
    /// (8 GPU, 64 vCPU, 488 GB) at $10/hr, weights GPU 9 : vCPU 0.9 : memory 0.1. (The page's
    /// tables have columns shifted; the figures are its Step 1 and Table 4.)
    #[test]
    fn the_example_for_accelerated_instances() {
        let p3 = reserved(dec!(64), dec!(488), dec!(8));
        assert_eq!(unit_cost(dec!(10), &p3).round_dp(3), dec!(0.056));
        let pods = [
            // reserved (vCPU, GB, GPU), used (vCPU, GB, GPU)
            ((16, 100, 1), (4, 60, 1)),
            ((16, 100, 2), (18, 140, 3)),
            ((16, 100, 2), (4, 60, 1)),
            ((16, 100, 2), (4, 40, 2)),
        ]
        .map(|((rv, rm, rg), (uv, um, ug))| Allocation {
            reserved: reserved(rv.into(), rm.into(), rg.into()),
            used: Some(reserved(uv.into(), um.into(), ug.into())),
        });
        let split = split(dec!(10), &p3, &pods);
        assert_eq!(split.per_hour.gpus.round_dp(3), dec!(0.504));
        assert_eq!(split.per_hour.vcpu.round_dp(2), dec!(0.05));
        assert_eq!(split.per_hour.memory_gib.round_dp(5), dec!(0.00561));
        let expected = [
            (dec!(1.85), dec!(0.06), dec!(1.91)),
            (dec!(3.18), dec!(0.09), dec!(3.26)),
            (dec!(2.35), dec!(0.06), dec!(2.41)),
            (dec!(2.35), dec!(0.06), dec!(2.41)),
        ];
        for (pod, (split_cost, unused, total)) in split.tasks.iter().zip(expected) {
            assert_eq!(cents(pod.split_cost), split_cost);
            assert_eq!(cents(pod.unused_cost), unused);
            assert_eq!(cents(pod.split_cost + pod.unused_cost), total);
        }
        let splits: Decimal = split.tasks.iter().map(|t| t.split_cost).sum();
        assert_eq!((splits + split.unused_cost).round_dp(20), dec!(10));
    }

    /// With reservations only and nothing oversubscribed, a task's split cost is its
    /// reservation's weighted share of the instance: what the ledger charges.
    #[test]
    fn a_reservation_share_is_the_split_cost_of_reservations() {
        let m5_xlarge = reserved(dec!(4), dec!(16), dec!(0));
        let tasks = [
            reserved(dec!(2), dec!(3.5), dec!(0)),
            reserved(dec!(1), dec!(8), dec!(0)),
        ];
        let allocations = tasks.map(|reserved| Allocation {
            reserved,
            used: None,
        });
        let split = split(dec!(0.192), &m5_xlarge, &allocations);
        for (task, part) in tasks.iter().zip(&split.tasks) {
            assert_eq!(
                reserved_share(dec!(0.192), &m5_xlarge, task).round_dp(20),
                part.split_cost.round_dp(20)
            );
        }
        // 2 vCPU and 3.5 GiB of 4 and 16: (18 + 3.5) / 52 of the price, not 0.9 × ½ + 0.1 × 7/32.
        assert_eq!(
            reserved_share(dec!(1), &m5_xlarge, &tasks[0]).round_dp(6),
            dec!(0.413462)
        );
    }
}
