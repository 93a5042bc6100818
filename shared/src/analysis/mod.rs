//! Analyses the command line (and the tests) run over the ledger, pure and local: no port, no
//! adapter, no AWS SDK. The Lambda functions use none of them.
//!
//! - [`report`]: the status report `replay`, `status` and `report` print;
//! - [`budgets`]: each budget of a budgets file against the spend (`--budgets`);
//! - [`bill`]: a day of the Cost and Usage Report checked against the ledger (`reconcile`);
//! - [`checklist`]: a deployed stack's facts judged, with a fix per failure (`doctor`);
//! - [`pricelist`]: AWS Price List documents → a price file (`prices fetch`);
//! - [`sim`]: a workload under batchguard, a poller and AWS Budgets (`simulate`);
//! - [`synth`]: a realistic generated workload with its ground truth (`generate`).

pub mod bill;
pub mod budgets;
pub mod checklist;
pub mod entry_policy;
pub mod figures;
pub mod pricelist;
pub mod report;
pub mod sim;
pub mod synth;
pub mod teams;
