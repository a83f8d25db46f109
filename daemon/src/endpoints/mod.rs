//! What the daemon serves and who reads it: the control socket ([`control`], its file
//! [`ctlsock`]) and the metrics endpoint ([`http`]) on one accept loop ([`server`]), the views
//! they render ([`status`]), the metrics registry the actors count into ([`metrics`]), and the
//! client side of the control socket used by the `status` / `addresses` subcommands
//! ([`client`]).

pub mod client;
pub mod control;
pub mod ctlsock;
pub mod http;
pub mod metrics;
pub mod server;
pub mod status;
