//! Real EventBridge events (AWS docs and public fixtures, see fixtures/events/README.md)
//! through the parser: every JSON file parses, and the fields billing needs come out right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rust_decimal::Decimal;
use rust_decimal::dec;
use shared::core::facts::{
    Architecture, Capacity, EnforcementAction, EnforcementRecorded, Fact, FactBody, JobObserved,
    JobStatus, Millis, Platform, TaskObserved,
};
use shared::events::{Parsed, SkipReason, parse_event};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/events")
}

fn parse_fixture(name: &str) -> Parsed {
    let bytes = std::fs::read(fixture_dir().join(name)).unwrap();
    parse_event(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn job(name: &str) -> JobObserved {
    match parse_fixture(name) {
        Parsed::Fact(fact) => match fact.body {
            FactBody::Job(job) => job,
            other => panic!("{name}: expected a job, got {other:?}"),
        },
        other => panic!("{name}: expected a fact, got {other:?}"),
    }
}

fn task(name: &str) -> TaskObserved {
    match parse_fixture(name) {
        Parsed::Fact(fact) => match fact.body {
            FactBody::Task(task) => task,
            other => panic!("{name}: expected a task, got {other:?}"),
        },
        other => panic!("{name}: expected a fact, got {other:?}"),
    }
}

#[test]
fn every_json_fixture_parses_to_a_fact_or_a_reasoned_skip() {
    let mut facts = 0;
    let mut skipped = 0;
    let mut names: Vec<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 19, "fixtures changed: {names:?}");
    for path in names {
        let bytes = std::fs::read(&path).unwrap();
        match parse_event(&bytes) {
            Ok(Parsed::Fact(_)) => facts += 1,
            Ok(Parsed::Skipped(reason)) => {
                assert!(!reason.to_string().is_empty());
                skipped += 1;
            }
            Err(error) => panic!("{}: {error}", path.display()),
        }
    }
    // 11 Batch job events + 1 ECS task on a Batch cluster; the rest are other kinds.
    assert_eq!((facts, skipped), (12, 7));
}

/// The team's event folder (`../shared/events` beside the checkout) is where new real events
/// arrive: every JSON file there must parse too, and be copied into our fixtures.
#[test]
fn the_team_event_folder_parses_and_is_mirrored_in_our_fixtures() {
    let team = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/events");
    let Ok(entries) = std::fs::read_dir(&team) else {
        eprintln!(
            "{} is not beside this checkout; the copies in fixtures/events were checked above",
            team.display()
        );
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        parse_event(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let copy = fixture_dir().join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read(&copy).ok(),
            Some(bytes),
            "{} is not copied into fixtures/events",
            path.display()
        );
    }
}

#[test]
fn fargate_job_with_a_failed_attempt_links_its_task_and_size() {
    let job = job("batch_job_state_change_FAILED_fargate_python_fixture_NOTE_event_time_key.json");
    assert_eq!(job.job_id, "a7c17e65-6eb9-4d5c-ad20-90ae910f6660");
    assert_eq!(job.queue, "fargate-tasks-queue");
    assert_eq!(job.job_definition, "web-app-scanner");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.platform, Some(Platform::Fargate));
    let size = job.size.unwrap();
    assert_eq!((size.vcpu, size.memory_gib), (dec!(0.5), dec!(2)));
    assert_eq!(job.attempts.len(), 1);
    let attempt = &job.attempts[0];
    assert_eq!(attempt.started_at, Some(Millis(1_668_329_909_107)));
    assert_eq!(attempt.stopped_at, Some(Millis(1_668_329_941_236)));
    assert_eq!(attempt.exit_code, Some(1));
    assert!(
        attempt
            .task_arn
            .as_deref()
            .unwrap()
            .ends_with("/332089cce2794bfeb27186563687041f")
    );
    assert!(
        job.tags.is_empty(),
        "the resourceArn pseudo-tag is not a user tag"
    );
}

#[test]
fn legacy_container_shape_reads_vcpus_and_memory_numbers() {
    let job = job("batch_job_state_change_SUCCEEDED_ec2_qiita_2017.json");
    let size = job.size.unwrap();
    assert_eq!((size.vcpu, size.memory_gib), (dec!(1), dec!(0.5)));
    assert_eq!(job.region.as_deref(), Some("us-west-2"));
    assert_eq!(
        job.platform, None,
        "no platformCapabilities: Batch's default, EC2, applies in billing"
    );
}

#[test]
fn ecs_properties_shape_gives_the_running_attempt_and_its_task() {
    let job = job("rtm_batch-event-RUNNING.json");
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.platform, Some(Platform::Ec2));
    assert_eq!(job.attempts.len(), 1, "the attempt in progress");
    assert_eq!(job.attempts[0].index, 0);
    assert_eq!(job.attempts[0].started_at, Some(Millis(1_760_707_430_919)));
    assert!(
        job.attempts[0]
            .task_arn
            .as_deref()
            .unwrap()
            .contains("AWSBatch-batch-compute-env-dev-")
    );
    let size = job.size.unwrap();
    assert_eq!((size.vcpu, size.memory_gib), (dec!(2), dec!(2)));
}

#[test]
fn multi_node_children_keep_their_node_index() {
    let main = job("rtm_batch-event-MNP-MAIN-NODE.json");
    let child = job("rtm_batch-event-MNP-CHILD-NODE-FAILED.json");
    assert_eq!(main.job_id, "b0814c91-61c2-4a2b-a790-44781b182ef9#0");
    assert_eq!(main.node_index, Some(0));
    assert_eq!(child.node_index, Some(1));
    assert_eq!(child.status, JobStatus::Failed);
    assert_eq!(child.attempts[0].exit_code, Some(1));
}

#[test]
fn ecs_task_of_a_batch_cluster_gives_size_storage_pull_and_stop() {
    let task =
        task("ecs_task_state_change_batch_fargate_STOPPED_python_fixture_NOTE_event_time_key.json");
    let size = task.size.unwrap();
    assert_eq!(
        (size.vcpu, size.memory_gib, size.storage_gib),
        (dec!(0.5), dec!(2), Some(30))
    );
    assert_eq!(task.capacity, Some(Capacity::OnDemand));
    assert_eq!(task.platform, Some(Platform::Fargate));
    assert_eq!(task.architecture, Some(Architecture::X86_64));
    assert_eq!(task.version, 5);
    assert_eq!(task.family.as_deref(), Some("prowler"));
    assert_eq!(task.stop_code.as_deref(), Some("EssentialContainerExited"));
    // "2022-11-23T16:36:31.21Z" and "2022-11-23T16:37:19.295Z"
    assert_eq!(task.pull_started_at, Some(Millis(1_669_221_391_210)));
    assert_eq!(task.stopped_at, Some(Millis(1_669_221_439_295)));
    assert_eq!(
        task.region.as_deref(),
        Some("us-east-1"),
        "from the task ARN when the envelope has none"
    );
}

#[test]
fn ecs_tasks_outside_batch_clusters_are_skipped_with_the_cluster_named() {
    for name in [
        "ecs_task_state_change_fargate_RUNNING_awsdocs.json",
        "ecs_task_state_change_fargate_spot_PENDING_github_go_comment.json",
        "ecs_task_state_change_fargate_STOPPED_service_github_2024.json",
    ] {
        match parse_fixture(name) {
            Parsed::Skipped(SkipReason::NotBatchCluster { cluster }) => {
                assert!(!cluster.is_empty())
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn other_event_kinds_are_skipped_not_rejected() {
    for name in [
        "cloudwatch_alarm_lambda_action_metric_aws_lambda_events_fixture.json",
        "cloudwatch_alarm_lambda_action_composite_aws_lambda_events_fixture.json",
        "eventbridge_generic_ec2_aws_lambda_events_fixture.json",
        "ecs_container_instance_state_change_awsdocs.json",
    ] {
        assert!(matches!(parse_fixture(name), Parsed::Skipped(_)), "{name}");
    }
}

#[test]
fn spot_capacity_provider_is_read_from_a_batch_cluster_task() {
    // The public Spot fixture runs on a service cluster; put it on a Batch cluster.
    let text = std::fs::read_to_string(
        fixture_dir().join("ecs_task_state_change_fargate_spot_PENDING_github_go_comment.json"),
    )
    .unwrap()
    .replace(
        "cluster/hoge-hoge-services",
        "cluster/AWSBatch-spot-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941",
    );
    let Parsed::Fact(fact) = parse_event(text.as_bytes()).unwrap() else {
        panic!("not a fact")
    };
    let FactBody::Task(task) = fact.body else {
        panic!("not a task")
    };
    assert_eq!(task.capacity, Some(Capacity::Spot));
    assert_eq!(task.compute_environment.as_deref(), Some("spot-ce"));
    assert_eq!(task.size.unwrap().vcpu, Decimal::new(5, 1));
}

#[test]
fn the_spot_interruption_snippet_is_not_json_and_is_rejected_with_a_reason() {
    let bytes = std::fs::read(
        fixture_dir().join("ecs_task_state_change_fargate_spot_interruption_SNIPPET_awsdocs.txt"),
    )
    .unwrap();
    let error = parse_event(&bytes).unwrap_err();
    assert!(error.to_string().starts_with("not JSON"), "{error}");
}

/// Facts are stored as JSON (SQLite, DynamoDB): every kind must read back as it was written.
#[test]
fn every_audit_action_survives_a_round_trip_through_json() {
    let actions = [
        EnforcementAction::Notified {
            notice: "stop".into(),
        },
        EnforcementAction::QueueDisabled {
            queue: "q".into(),
            budget: None,
        },
        EnforcementAction::QueueDisabled {
            queue: "q".into(),
            budget: Some("genomics".into()),
        },
        EnforcementAction::QueueHeld {
            queue: "q".into(),
            budget: Some("genomics".into()),
        },
        EnforcementAction::QueueEnabled {
            queue: "q".into(),
            budget: None,
        },
        EnforcementAction::QueueReleased {
            queue: "q".into(),
            budget: Some("genomics".into()),
        },
        EnforcementAction::JobCancelled {
            job_id: "j".into(),
            queue: "q".into(),
        },
        EnforcementAction::JobTerminated {
            job_id: "j".into(),
            queue: "q".into(),
        },
    ];
    for action in actions {
        let fact = Fact {
            event_id: "e".into(),
            observed_at: Some(Millis(1)),
            body: FactBody::Enforcement(EnforcementRecorded {
                action,
                level: "stop".into(),
                reason: "r".into(),
                dry_run: true,
                at: Millis(1),
                period_start: 0,
            }),
        };
        let text = serde_json::to_string(&fact).unwrap();
        let back: Result<Fact, _> = serde_json::from_str(&text);
        assert_eq!(back.ok(), Some(fact), "{text}");
    }
    // An entry written before queues had holders is the stack's own hold.
    let before: EnforcementRecorded = serde_json::from_value(serde_json::json!({
        "action": "queue_disabled", "queue": "q", "level": "freeze", "reason": "r",
        "dry_run": false, "at": 1, "period_start": 0
    }))
    .unwrap();
    assert_eq!(
        before.action,
        EnforcementAction::QueueDisabled {
            queue: "q".into(),
            budget: None
        }
    );
}
