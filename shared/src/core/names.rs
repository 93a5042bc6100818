//! Names AWS packs into ARNs and cluster names, unpacked without IO.

/// The last `/`-separated segment of an ARN (a queue ARN gives the queue name); a plain name
/// comes back unchanged.
pub fn last_segment(arn_or_name: &str) -> &str {
    arn_or_name.rsplit('/').next().unwrap_or(arn_or_name)
}

/// A job definition name without its revision: `…:job-definition/scan:3` → `scan`.
pub fn job_definition_name(arn_or_name: &str) -> &str {
    let name = last_segment(arn_or_name);
    match name.rsplit_once(':') {
        Some((base, revision)) if revision.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// The region field of an ARN (`arn:aws:ecs:us-east-1:…` → `us-east-1`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let region = arn.split(':').nth(3)?;
    (!region.is_empty()).then_some(region)
}

/// The cluster name inside a new-format task ARN (`…:task/<cluster>/<id>`).
pub fn cluster_of_task_arn(task_arn: &str) -> Option<&str> {
    let resource = task_arn.split_once(":task/")?.1;
    let (cluster, _task_id) = resource.split_once('/')?;
    Some(cluster)
}

/// The cluster named in a (new-format) container instance ARN,
/// `…:container-instance/<cluster>/<id>`.
pub fn cluster_of_container_instance_arn(arn: &str) -> Option<&str> {
    let resource = arn.split_once(":container-instance/")?.1;
    let (cluster, _id) = resource.split_once('/')?;
    Some(cluster)
}

/// The Batch compute environment behind an ECS cluster that Batch manages.
///
/// Batch names its clusters `AWSBatch-<compute-environment>-<uuid>`; the UUID is dropped when
/// it is whole (36 characters). Fixtures often truncate it, in which case the rest is kept
/// as it stands. `None` for clusters Batch does not manage.
pub fn compute_environment_of_cluster(cluster_arn_or_name: &str) -> Option<&str> {
    let name = last_segment(cluster_arn_or_name);
    let rest = name.strip_prefix("AWSBatch-")?;
    const UUID_LEN: usize = 36;
    if rest.len() > UUID_LEN + 1 {
        let (head, tail) = rest.split_at(rest.len() - UUID_LEN);
        if is_uuid(tail) && head.ends_with('-') {
            return Some(&head[..head.len() - 1]);
        }
    }
    Some(rest)
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_batch_names() {
        assert_eq!(
            last_segment("arn:aws:batch:us-east-1:1:job-queue/fargate-tasks-queue"),
            "fargate-tasks-queue"
        );
        assert_eq!(
            job_definition_name("arn:aws:batch:us-east-1:1:job-definition/web-app-scanner:12"),
            "web-app-scanner"
        );
        assert_eq!(job_definition_name("plain-name"), "plain-name");
        assert_eq!(
            arn_region("arn:aws:ecs:eu-west-1:1:task/c/t"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("not-an-arn"), None);
    }

    #[test]
    fn compute_environment_comes_from_the_batch_cluster_name() {
        let task = "arn:aws:ecs:us-east-1:1:task/AWSBatch-fargate-batch-compute-a9b789f0-f35e-396f-9c0f-50e00abf809f/3320";
        let cluster = cluster_of_task_arn(task);
        assert_eq!(
            cluster,
            Some("AWSBatch-fargate-batch-compute-a9b789f0-f35e-396f-9c0f-50e00abf809f")
        );
        assert_eq!(
            compute_environment_of_cluster(cluster.unwrap_or_default()),
            Some("fargate-batch-compute")
        );
        // A truncated UUID (as in some fixtures) is kept rather than guessed at.
        assert_eq!(
            compute_environment_of_cluster(
                "arn:aws:ecs:us-east-1:1:cluster/AWSBatch-ce-13af15fe-56c9-3"
            ),
            Some("ce-13af15fe-56c9-3")
        );
        assert_eq!(compute_environment_of_cluster("FargateCluster"), None);
        assert_eq!(
            cluster_of_task_arn("arn:aws:ecs:us-west-2:1:task/xxxxxxxx"),
            None
        );
    }
}
