//! WebSub (W3C): tell the hub that feeds changed, so subscribers get them at once.

use std::time::Duration;

/// A hub that could not be told.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("WebSub hub {hub} answered {status} for {topic}")]
    Status {
        hub: String,
        topic: String,
        status: u16,
    },
    #[error("cannot reach WebSub hub {hub} for {topic}: {source}")]
    Transport {
        hub: String,
        topic: String,
        #[source]
        source: Box<ureq::Error>,
    },
}

/// Tell `hub` that each of `topics` (absolute feed URLs) changed: one
/// `hub.mode=publish` POST per topic, giving the URL as both `hub.url` (PubSubHubbub
/// 0.4) and `hub.topic` (what WebSub hubs read). Each request gives up after
/// `timeout`. Call it after a publish that changed feeds; stops at the first failure.
pub fn ping_hub(hub: &str, topics: &[String], timeout: Duration) -> Result<(), PingError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    for topic in topics {
        let response = agent
            .post(hub)
            .send_form([
                ("hub.mode", "publish"),
                ("hub.url", topic.as_str()),
                ("hub.topic", topic.as_str()),
            ])
            .map_err(|e| PingError::Transport {
                hub: hub.to_string(),
                topic: topic.clone(),
                source: Box::new(e),
            })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(PingError::Status {
                hub: hub.to_string(),
                topic: topic.clone(),
                status,
            });
        }
        tracing::info!(hub, topic = topic.as_str(), status, "WebSub hub pinged");
    }
    Ok(())
}
