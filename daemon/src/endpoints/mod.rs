//! What the daemon serves and who reads it: the control socket ([`control`]) and the metrics
//! endpoint ([`http`], its pure request parser [`http_request`]) on one accept loop
//! ([`server`]), the views they render ([`status`]),
//! the metrics registry the actors count into ([`metrics`]), and the client side of the
//! control socket used by the `status` / `addresses` subcommands ([`client`]).

pub mod client;
pub mod control;
pub mod http;
pub mod http_request;
pub mod metrics;
pub mod server;
pub mod status;
