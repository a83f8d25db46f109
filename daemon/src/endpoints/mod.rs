//! What the daemon serves and who reads it: the control socket ([`control`], its file
//! [`ctlsock`], speaking the versioned protocol of [`protocol`], with the live stream of
//! [`monitor`]) and the metrics endpoint ([`http`], its pure request parser [`http_request`])
//! on one accept loop ([`server`]), the views they render ([`status`]), the metrics registry
//! the actors count into ([`metrics`]), and the client subcommands of the control socket
//! ([`client`]).

pub mod client;
pub mod control;
pub mod ctlsock;
pub mod http;
pub mod http_request;
pub mod metrics;
pub mod monitor;
pub mod protocol;
pub mod server;
pub mod status;
