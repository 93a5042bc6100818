//! Notifications through Amazon SNS.

use aws_sdk_sns::Client;

use crate::ports::{ControlError, Notifier};

/// SNS limits subjects to 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// Publishes to one topic.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

impl Notifier for SnsNotifier {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), ControlError> {
        let subject: String = subject.chars().take(MAX_SUBJECT_CHARS).collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| ControlError::Api {
                operation: "Publish",
                message: super::sdk_error::summary(&e),
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }
}

/// No topic configured: notifications go to the log only.
#[derive(Clone, Debug, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), ControlError> {
        eprintln!("batchguard notification: {subject}: {message}");
        Ok(())
    }
}

/// SNS when a topic is configured, the log otherwise.
#[derive(Clone, Debug)]
pub enum Notifications {
    Sns(SnsNotifier),
    Log(LogNotifier),
}

impl Notifications {
    /// SNS when `topic_arn` is given, the log otherwise.
    pub fn for_topic(config: &aws_config::SdkConfig, topic_arn: Option<&str>) -> Self {
        match topic_arn {
            Some(topic) => Self::Sns(SnsNotifier::new(Client::new(config), topic.to_owned())),
            None => Self::Log(LogNotifier),
        }
    }
}

impl Notifier for Notifications {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), ControlError> {
        match self {
            Self::Sns(sns) => sns.notify(subject, message).await,
            Self::Log(log) => log.notify(subject, message).await,
        }
    }
}
