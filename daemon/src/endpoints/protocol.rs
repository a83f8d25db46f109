//! The control protocol (docs/CONTROL.md), pure: the requests a client may send, the one
//! parser every request goes through ([`parse_request`]: any bytes in, a [`Request`] or a
//! [`RequestError`] with its [`ErrorCode`] out, never a panic), the replies, who may send what
//! ([`authorize`]), and the lines of the monitor stream ([`MonitorLine`], built here from
//! domain types with the time as an argument, and rendered as columns for `mptcp-pmd monitor`).
//! The daemon's server ([`super::control`]) and the CLI ([`super::client`]) both speak it
//! through these types, so the CLI is one client of the documented protocol among others.
//!
//! Wire format, version [`VERSION`]: one request per connection, one line of at most
//! [`REQUEST_LIMIT`] bytes, a JSON object `{"v":1,"cmd":"...",...}` (the bare words `status`
//! and `addresses` of the first, unversioned protocol are still understood); one JSON reply
//! line `{"v":1,"ok":true|false,...}`; for `monitor`, the reply is followed by one JSON
//! [`MonitorLine`] per line until either side closes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use mptcp_pmd_policies::policy::{Action, Decision};
use mptcp_pmd_policies::{KernelRefusal, Manual, PmCommand, PmEvent, SubflowKey, Token};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::status::{Addresses, Status};

/// The protocol version this daemon speaks (`"v"` in every request and reply).
pub const VERSION: u32 = 1;

/// The longest request line, in bytes (the newline included). A request is a few hundred
/// bytes; anything longer is refused with [`ErrorCode::TooLarge`] without reading on.
pub const REQUEST_LIMIT: usize = 4096;

/// A connection token as the protocol writes it: 8 hex digits, as `mptcp-pmd status` and
/// `ss -M` show it (reading also takes fewer digits and a `0x` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenText(pub Token);

impl TokenText {
    /// Parse `0000abcd`, `abcd` or `0xabcd`.
    pub fn parse(s: &str) -> Result<Token, String> {
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid token {s:?}: expected up to 8 hex digits, as `mptcp-pmd status` shows it"
            ));
        }
        u32::from_str_radix(hex, 16)
            .map(Token)
            .map_err(|e| format!("invalid token {s:?}: {e}"))
    }
}

/// A token's text: 8 hex digits.
pub fn token_text(t: Token) -> String {
    format!("{:08x}", t.0)
}

impl Serialize for TokenText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&token_text(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenText::parse(&s)
            .map(TokenText)
            .map_err(serde::de::Error::custom)
    }
}

/// What a monitor line is about (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(clap::ValueEnum)]
pub enum Kind {
    /// A kernel `mptcp_pm` event.
    Event,
    /// A policy's decision, with its reason.
    Decision,
    /// A PM command sent to the kernel (by a policy or an operator) and the kernel's answer.
    Command,
    /// The usable local addresses changed.
    Address,
    /// The reader fell behind and lines were dropped (always sent, whatever the filter).
    #[value(skip)]
    Lost,
}

impl Kind {
    /// The kinds a client may subscribe to.
    pub const SUBSCRIBABLE: [Kind; 4] = [Kind::Event, Kind::Decision, Kind::Command, Kind::Address];

    fn bit(self) -> u8 {
        match self {
            Kind::Event => 1,
            Kind::Decision => 2,
            Kind::Command => 4,
            Kind::Address => 8,
            Kind::Lost => 16,
        }
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Decision => "decision",
            Kind::Command => "command",
            Kind::Address => "address",
            Kind::Lost => "lost",
        }
    }
}

/// Which lines a monitor client wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorFilter {
    kinds: u8,
    /// Only lines about this connection (lines without a token, such as address changes, are
    /// left out then).
    pub token: Option<Token>,
}

impl Default for MonitorFilter {
    fn default() -> Self {
        MonitorFilter::new(&[], None)
    }
}

impl MonitorFilter {
    /// `kinds` (empty: every kind), about `token` (none: every connection).
    pub fn new(kinds: &[Kind], token: Option<Token>) -> MonitorFilter {
        let mut bits = kinds.iter().fold(0, |b, k| b | k.bit());
        if bits & !Kind::Lost.bit() == 0 {
            bits = Kind::SUBSCRIBABLE.iter().fold(0, |b, k| b | k.bit());
        }
        MonitorFilter {
            kinds: bits | Kind::Lost.bit(),
            token,
        }
    }

    /// Whether a line of `kind` about `token` passes.
    pub fn matches(&self, kind: Kind, token: Option<Token>) -> bool {
        if kind == Kind::Lost {
            return true;
        }
        self.kinds & kind.bit() != 0 && (self.token.is_none() || self.token == token)
    }

    /// The subscribed kinds, in wire order.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::SUBSCRIBABLE
            .into_iter()
            .filter(|k| self.kinds & k.bit() != 0)
            .collect()
    }
}

/// A command on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A PM command by hand, through the connection's state machine.
    Manual(Manual),
    /// The policy stops acting on the connection.
    Hold,
    /// The policy acts on the connection again.
    Release,
}

impl Op {
    /// The `cmd` name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Manual(m) => m.name(),
            Op::Hold => "hold",
            Op::Release => "release",
        }
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every tracked connection (`status`).
    Status,
    /// The local addresses and listeners (`addresses`).
    Addresses,
    /// Subscribe to the live stream.
    Monitor(MonitorFilter),
    /// Act on one connection.
    Command {
        /// The connection.
        token: Token,
        /// What to do.
        op: Op,
    },
}

impl Request {
    /// The `cmd` name.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Addresses => "addresses",
            Request::Monitor(_) => "monitor",
            Request::Command { op, .. } => op.name(),
        }
    }

    /// Only reads the daemon's state (allowed to `control.group`).
    pub fn reads_only(&self) -> bool {
        !matches!(self, Request::Command { .. })
    }

    /// The request line (newline included) a client sends.
    pub fn to_line(&self) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("v".into(), VERSION.into());
        obj.insert("cmd".into(), self.name().into());
        let args = match self {
            Request::Status | Request::Addresses => serde_json::Value::Null,
            Request::Monitor(f) => json(&MonitorArgs {
                kinds: f.kinds(),
                token: f.token.map(TokenText),
            }),
            Request::Command { token, op } => {
                let token = TokenText(*token);
                match op {
                    Op::Manual(Manual::Create {
                        local,
                        remote,
                        backup,
                    }) => json(&CreateArgs {
                        token,
                        local: *local,
                        remote: *remote,
                        backup: *backup,
                    }),
                    Op::Manual(Manual::Destroy { key }) => json(&DestroyArgs {
                        token,
                        local: key.local,
                        remote: key.remote,
                    }),
                    Op::Manual(Manual::SetBackup { key, backup }) => json(&BackupArgs {
                        token,
                        local: key.local,
                        remote: key.remote,
                        backup: *backup,
                    }),
                    Op::Manual(Manual::Announce { addr, id }) => json(&AnnounceArgs {
                        token,
                        addr: *addr,
                        id: *id,
                    }),
                    Op::Manual(Manual::Withdraw { id }) => json(&WithdrawArgs { token, id: *id }),
                    Op::Hold | Op::Release => json(&TokenArgs { token }),
                }
            }
        };
        if let serde_json::Value::Object(a) = args {
            obj.extend(a);
        }
        let mut line = serde_json::Value::Object(obj).to_string();
        line.push('\n');
        line
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    // These argument structs hold strings, numbers and booleans only: serializing them to a
    // Value cannot fail; if it ever did, the request would carry no arguments and the daemon
    // would say which one is missing.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorArgs {
    #[serde(default)]
    kinds: Vec<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<TokenText>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenArgs {
    token: TokenText,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    token: TokenText,
    local: IpAddr,
    remote: SocketAddr,
    #[serde(default)]
    backup: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyArgs {
    token: TokenText,
    local: SocketAddr,
    remote: SocketAddr,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupArgs {
    token: TokenText,
    local: SocketAddr,
    remote: SocketAddr,
    backup: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceArgs {
    token: TokenText,
    addr: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawArgs {
    token: TokenText,
    id: u8,
}

/// Every `cmd` this daemon understands, in documentation order.
pub const COMMANDS: [&str; 10] = [
    "status",
    "addresses",
    "monitor",
    "subflow_create",
    "subflow_destroy",
    "subflow_backup",
    "announce",
    "withdraw",
    "hold",
    "release",
];

/// What went wrong, for programs (`code` in an error reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is not what the protocol allows: not UTF-8, not JSON, a missing or bad
    /// field, several lines.
    BadRequest,
    /// Longer than [`REQUEST_LIMIT`].
    TooLarge,
    /// A `v` this daemon does not speak.
    UnsupportedVersion,
    /// A `cmd` this daemon does not know.
    UnknownCommand,
    /// The caller may not send this request (not root, or `control.group` sending a command).
    Forbidden,
    /// Too many clients or monitors at once; try again later.
    Busy,
    /// No tracked connection has that token.
    NoConnection,
    /// The connection's state machine refused the command; nothing was sent to the kernel.
    Refused,
    /// The kernel refused the command (`errno`, `kernel_message`).
    KernelRefused,
    /// The daemon runs with `--dry-run`: it sends no command.
    DryRun,
    /// The daemon could not serve the request (an actor stopped: it is shutting down).
    Unavailable,
    /// A code of a newer daemon.
    #[serde(other)]
    Other,
}

/// A request the daemon will not serve: its code and what to say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// For programs.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl RequestError {
    /// `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RequestError {
        RequestError {
            code,
            message: message.into(),
        }
    }
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::new(ErrorCode::BadRequest, message)
}

/// At most `n` characters of `s`, for echoing a bad value back.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Parse one request: the bytes a client sent up to and including its first newline (or up
/// to the end, if it closed its side without one). Pure and total: every input gives a
/// request or an error that says what is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<Request, RequestError> {
    if bytes.len() > REQUEST_LIMIT {
        return Err(RequestError::new(
            ErrorCode::TooLarge,
            format!(
                "request longer than {REQUEST_LIMIT} bytes; a request is one line of JSON (docs/CONTROL.md)"
            ),
        ));
    }
    let line = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) if bytes[i + 1..].iter().any(|b| !b.is_ascii_whitespace()) => {
            return Err(bad(
                "more than one line: send one request per connection, ended by a newline",
            ))
        }
        Some(i) => &bytes[..i],
        None => bytes,
    };
    let text = std::str::from_utf8(line).map_err(|e| {
        bad(format!(
            "request is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(
            "empty request: send one line of JSON such as {\"v\":1,\"cmd\":\"status\"}",
        ));
    }
    if !text.starts_with('{') {
        // The first protocol: a bare word.
        return match text {
            "status" => Ok(Request::Status),
            "addresses" => Ok(Request::Addresses),
            other => Err(RequestError::new(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown request {:?}: send a JSON object such as {{\"v\":1,\"cmd\":\"status\"}} (docs/CONTROL.md)",
                    clip(other, 64)
                ),
            )),
        };
    }
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| bad(format!("request is not a JSON object: {e}")))?;
    match obj.remove("v") {
        None => {
            return Err(bad(format!(
                "missing \"v\": the protocol version (this daemon speaks {VERSION})"
            )))
        }
        Some(v) => match v.as_u64() {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) => {
                return Err(RequestError::new(
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {n} is not supported; this daemon speaks {VERSION}"),
                ))
            }
            None => {
                return Err(bad(format!(
                    "\"v\" must be a whole number (this daemon speaks {VERSION}), not {}",
                    clip(&v.to_string(), 32)
                )))
            }
        },
    }
    let cmd = match obj.remove("cmd") {
        Some(serde_json::Value::String(c)) => c,
        Some(other) => {
            return Err(bad(format!(
                "\"cmd\" must be a string, not {}",
                clip(&other.to_string(), 32)
            )))
        }
        None => {
            return Err(bad(format!(
                "missing \"cmd\": one of {}",
                COMMANDS.join(", ")
            )))
        }
    };
    let rest = serde_json::Value::Object(obj);
    let args = |e: serde_json::Error| bad(format!("{cmd}: {e}"));
    let token = |t: TokenText| t.0;
    Ok(match cmd.as_str() {
        "status" => {
            NoArgs::deserialize(rest).map_err(args)?;
            Request::Status
        }
        "addresses" => {
            NoArgs::deserialize(rest).map_err(args)?;
            Request::Addresses
        }
        "monitor" => {
            let a = MonitorArgs::deserialize(rest).map_err(args)?;
            if a.kinds.contains(&Kind::Lost) {
                return Err(bad(
                    "monitor: \"lost\" is not a kind to subscribe to (lost lines always come)",
                ));
            }
            Request::Monitor(MonitorFilter::new(&a.kinds, a.token.map(token)))
        }
        "subflow_create" => {
            let a = CreateArgs::deserialize(rest).map_err(args)?;
            command(
                a.token,
                Manual::Create {
                    local: a.local,
                    remote: a.remote,
                    backup: a.backup,
                },
            )
        }
        "subflow_destroy" => {
            let a = DestroyArgs::deserialize(rest).map_err(args)?;
            let key = subflow_key(&cmd, a.local, a.remote)?;
            command(a.token, Manual::Destroy { key })
        }
        "subflow_backup" => {
            let a = BackupArgs::deserialize(rest).map_err(args)?;
            let key = subflow_key(&cmd, a.local, a.remote)?;
            command(
                a.token,
                Manual::SetBackup {
                    key,
                    backup: a.backup,
                },
            )
        }
        "announce" => {
            let a = AnnounceArgs::deserialize(rest).map_err(args)?;
            if a.id == Some(0) {
                return Err(bad(
                    "announce: id 0 names the initial subflow's address; use 1..255",
                ));
            }
            command(
                a.token,
                Manual::Announce {
                    addr: a.addr,
                    id: a.id,
                },
            )
        }
        "withdraw" => {
            let a = WithdrawArgs::deserialize(rest).map_err(args)?;
            if a.id == 0 {
                return Err(bad(
                    "withdraw: id 0 names the initial subflow's address; use 1..255",
                ));
            }
            command(a.token, Manual::Withdraw { id: a.id })
        }
        "hold" | "release" => {
            let a = TokenArgs::deserialize(rest).map_err(args)?;
            Request::Command {
                token: a.token.0,
                op: if cmd == "hold" { Op::Hold } else { Op::Release },
            }
        }
        other => {
            return Err(RequestError::new(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown cmd {:?}; expected one of {}",
                    clip(other, 64),
                    COMMANDS.join(", ")
                ),
            ))
        }
    })
}

fn command(token: TokenText, m: Manual) -> Request {
    Request::Command {
        token: token.0,
        op: Op::Manual(m),
    }
}

/// A subflow named by its two ends: both ports are needed (the kernel's SUBFLOW_DESTROY and
/// SET_FLAGS name a subflow by its 4-tuple), and both ends of one family.
fn subflow_key(
    cmd: &str,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<SubflowKey, RequestError> {
    if local.port() == 0 || remote.port() == 0 {
        return Err(bad(format!(
            "{cmd}: a subflow is named by both ports (local {local}, remote {remote}); `mptcp-pmd status` lists them"
        )));
    }
    if local.ip().to_canonical().is_ipv4() != remote.ip().to_canonical().is_ipv4() {
        return Err(bad(format!(
            "{cmd}: {local} and {remote} are of different address families"
        )));
    }
    Ok(SubflowKey { local, remote })
}

/// Who is asking, from the socket's peer credentials (SO_PEERCRED, SO_PEERGROUPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id (0 if unknown).
    pub pid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

/// Whether `peer` may send `request`: root (uid 0) may send anything; a member of
/// `control.group` (`group`, primary or supplementary) may read (status, addresses,
/// monitor) but not command; nobody else may do anything.
pub fn authorize(peer: &Peer, group: Option<u32>, request: &Request) -> Result<(), RequestError> {
    if peer.uid == 0 {
        return Ok(());
    }
    let member = group.is_some_and(|g| peer.gid == g || peer.groups.contains(&g));
    match (member, request.reads_only()) {
        (true, true) => Ok(()),
        (true, false) => Err(RequestError::new(
            ErrorCode::Forbidden,
            format!(
                "{}: only root may command the daemon (uid {} is in control.group, which may read status, addresses and monitor)",
                request.name(),
                peer.uid
            ),
        )),
        (false, _) => Err(RequestError::new(
            ErrorCode::Forbidden,
            format!(
                "{}: uid {} may not use the control socket (root only{})",
                request.name(),
                peer.uid,
                if group.is_some() {
                    ", and members of control.group may read"
                } else {
                    "; see control.group"
                }
            ),
        )),
    }
}

/// What a command did (`done` in its reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The request's `cmd`.
    pub command: String,
    /// The connection.
    pub token: String,
    /// What was sent and what the kernel said, for people.
    pub detail: String,
    /// For hold / release: whether that changed anything (false: it was held / free already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

/// The answer to `monitor`, before the stream starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The kinds that will come (and `lost`).
    pub kinds: Vec<Kind>,
    /// Only this connection, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// How many lines the daemon keeps for this client before it drops them (and then says
    /// how many in a `lost` line).
    pub queue: usize,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The protocol version.
    #[serde(default)]
    pub v: u32,
    /// Whether the request was served.
    pub ok: bool,
    /// Why not, for programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Why not, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `kernel_refused`: the kernel's errno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// With `kernel_refused`: the kernel's extended-ACK message, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_message: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The answer to `addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Addresses>,
    /// The answer to a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Done>,
    /// The answer to `monitor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Subscribed>,
}

impl Reply {
    fn ok() -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            code: None,
            error: None,
            errno: None,
            kernel_message: None,
            status: None,
            addresses: None,
            done: None,
            monitor: None,
        }
    }

    /// The error reply for `e`.
    pub fn error(e: &RequestError) -> Reply {
        Reply {
            ok: false,
            code: Some(e.code),
            error: Some(e.message.clone()),
            ..Reply::ok()
        }
    }

    /// The kernel refused `command`.
    pub fn kernel_refused(command: &str, r: &KernelRefusal) -> Reply {
        Reply {
            errno: Some(r.errno),
            kernel_message: r.message.clone(),
            ..Reply::error(&RequestError::new(
                ErrorCode::KernelRefused,
                format!(
                    "the kernel refused {command} with errno {}: {}",
                    r.errno,
                    r.message.as_deref().unwrap_or("no message")
                ),
            ))
        }
    }

    /// `status`'s answer.
    pub fn status(s: Status) -> Reply {
        Reply {
            status: Some(s),
            ..Reply::ok()
        }
    }

    /// `addresses`' answer.
    pub fn addresses(a: Addresses) -> Reply {
        Reply {
            addresses: Some(a),
            ..Reply::ok()
        }
    }

    /// A command's answer.
    pub fn done(d: Done) -> Reply {
        Reply {
            done: Some(d),
            ..Reply::ok()
        }
    }

    /// `monitor`'s answer.
    pub fn subscribed(s: Subscribed) -> Reply {
        Reply {
            monitor: Some(s),
            ..Reply::ok()
        }
    }

    /// The reply line (newline included).
    pub fn to_line(&self) -> String {
        // A reply holds strings, numbers, booleans and lists of them only.
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"v\":{VERSION},\"ok\":false,\"code\":\"unavailable\",\"error\":\"cannot encode the reply: {e}\"}}")
        });
        s.push('\n');
        s
    }
}

/// Who sent a command: a policy's decision or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A policy's decision (or the state machine's own retry).
    Policy,
    /// An operator, through the control socket.
    Operator,
}

/// One line of the monitor stream. Which fields are present depends on `kind` (docs/CONTROL.md
/// lists them); absent ones are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorLine {
    /// What the line is about.
    pub kind: Kind,
    /// When, in seconds since the Unix epoch (microsecond resolution).
    pub time: f64,
    /// The connection, if the line is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The event, action or command name (`sub_established`, `open`, `subflow_create`, ...).
    pub name: String,
    /// Local address (and port, when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Remote address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Local address id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc_id: Option<u8>,
    /// Remote address id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rem_id: Option<u8>,
    /// Backup flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// Events: this host accepted the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side: Option<bool>,
    /// Events: the socket error a subflow closed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<u8>,
    /// Decisions: the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Decisions: `default` or `rule N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Decisions: the reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Decisions: the reason's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Decisions: logged only, not carried out (`--dry-run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Commands: a policy's or an operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Commands: `ok`, or `refused` with `errno` and `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Commands: the kernel's errno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Commands: the kernel's extended-ACK message; unknown events: their type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Operator commands: the caller's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Operator commands: the caller's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Address changes: addresses that became usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<Vec<String>>,
    /// Address changes: addresses that are no longer usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<String>>,
    /// Address changes: every usable address now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable: Option<Vec<String>>,
    /// Lost lines: how many were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
}

impl MonitorLine {
    fn new(kind: Kind, time: f64, token: Option<Token>, name: &str) -> MonitorLine {
        MonitorLine {
            kind,
            time,
            token: token.map(token_text),
            name: name.to_string(),
            local: None,
            remote: None,
            loc_id: None,
            rem_id: None,
            backup: None,
            server_side: None,
            error: None,
            policy: None,
            rule: None,
            reason: None,
            why: None,
            dry_run: None,
            origin: None,
            result: None,
            errno: None,
            message: None,
            uid: None,
            pid: None,
            added: None,
            removed: None,
            usable: None,
            lines: None,
        }
    }

    /// The line (newline included).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    fn key(&mut self, key: &SubflowKey) {
        self.local = Some(key.local.to_string());
        self.remote = Some(key.remote.to_string());
    }
}

/// A kernel event at `time`.
pub fn event_line(time: f64, ev: &PmEvent) -> MonitorLine {
    let mut l = MonitorLine::new(Kind::Event, time, ev.token(), ev.name());
    match ev {
        PmEvent::Created(c) | PmEvent::Established(c) => {
            l.local = Some(c.local.to_string());
            l.remote = Some(c.remote.to_string());
            l.loc_id = Some(c.loc_id);
            l.rem_id = Some(c.rem_id);
            l.server_side = Some(c.flags.server_side);
        }
        PmEvent::Closed { .. } => {}
        PmEvent::Announced {
            rem_id, addr, port, ..
        } => {
            l.remote = Some(match port {
                Some(p) => SocketAddr::new(*addr, *p).to_string(),
                None => addr.to_string(),
            });
            l.rem_id = Some(*rem_id);
        }
        PmEvent::Removed { rem_id, .. } => l.rem_id = Some(*rem_id),
        PmEvent::SubEstablished(s) | PmEvent::SubClosed(s) | PmEvent::SubPriority(s) => {
            l.key(&s.key());
            l.loc_id = Some(s.loc_id);
            l.rem_id = Some(s.rem_id);
            l.backup = Some(s.backup);
            l.error = s.error.filter(|e| *e != 0);
        }
        PmEvent::ListenerCreated { addr } | PmEvent::ListenerClosed { addr } => {
            l.local = Some(addr.to_string());
        }
        PmEvent::Unknown { kind, .. } => l.message = Some(format!("event type {kind}")),
    }
    l
}

/// A policy's decision for `token` at `time`.
pub fn decision_line(
    time: f64,
    token: Token,
    policy: &str,
    rule: &str,
    d: &Decision,
    dry_run: bool,
) -> MonitorLine {
    let mut l = MonitorLine::new(Kind::Decision, time, Some(token), d.action.name());
    match &d.action {
        Action::Open {
            local,
            remote,
            backup,
            ..
        } => {
            l.local = Some(local.to_string());
            l.remote = Some(remote.to_string());
            l.backup = Some(*backup);
        }
        Action::Close { key } => l.key(key),
        Action::SetBackup { key, backup } => {
            l.key(key);
            l.backup = Some(*backup);
        }
        Action::Announce { addr, port } => {
            l.local = Some(match port {
                Some(p) => SocketAddr::new(*addr, *p).to_string(),
                None => addr.to_string(),
            });
        }
        Action::Remove { addr } => l.local = Some(addr.to_string()),
    }
    l.policy = Some(policy.to_string());
    l.rule = Some(rule.to_string());
    l.reason = Some(d.reason.code.to_string());
    l.why = Some(d.reason.detail.to_string());
    l.dry_run = dry_run.then_some(true);
    l
}

/// A PM command at `time`, by `origin` (`caller`: uid and pid, for an operator's), and the
/// kernel's answer.
pub fn command_line(
    time: f64,
    cmd: &PmCommand,
    origin: Origin,
    caller: Option<(u32, u32)>,
    result: &Result<(), KernelRefusal>,
) -> MonitorLine {
    let mut l = MonitorLine::new(Kind::Command, time, Some(cmd.token()), cmd.name());
    match cmd {
        PmCommand::CreateSubflow {
            local,
            local_id,
            remote,
            backup,
            ..
        } => {
            l.local = Some(local.to_string());
            l.loc_id = Some(*local_id);
            l.remote = Some(remote.to_string());
            l.backup = Some(*backup);
        }
        PmCommand::DestroySubflow { key, .. } => l.key(key),
        PmCommand::SetBackup { key, backup, .. } => {
            l.key(key);
            l.backup = Some(*backup);
        }
        PmCommand::Announce { id, addr, port, .. } => {
            l.local = Some(match port {
                Some(p) => SocketAddr::new(*addr, *p).to_string(),
                None => addr.to_string(),
            });
            l.loc_id = Some(*id);
        }
        PmCommand::Remove { id, .. } => l.loc_id = Some(*id),
    }
    l.origin = Some(origin);
    if let Some((uid, pid)) = caller {
        l.uid = Some(uid);
        l.pid = Some(pid);
    }
    match result {
        Ok(()) => l.result = Some("ok".into()),
        Err(r) => {
            l.result = Some("refused".into());
            l.errno = Some(r.errno);
            l.message = r.message.clone();
        }
    }
    l
}

/// An operator held (`held`) or released `token` at `time`: a command line with no kernel
/// command behind it (`name` `hold` or `release`), so a monitor sees who took the connection
/// from its policy.
pub fn hold_line(time: f64, token: Token, held: bool, caller: (u32, u32)) -> MonitorLine {
    let name = if held { "hold" } else { "release" };
    let mut l = MonitorLine::new(Kind::Command, time, Some(token), name);
    l.origin = Some(Origin::Operator);
    l.uid = Some(caller.0);
    l.pid = Some(caller.1);
    l.result = Some("ok".into());
    l
}

/// The usable local addresses changed at `time`.
pub fn address_line(
    time: f64,
    added: &[IpAddr],
    removed: &[IpAddr],
    usable: &[IpAddr],
) -> MonitorLine {
    let text = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut l = MonitorLine::new(Kind::Address, time, None, "changed");
    l.added = Some(text(added));
    l.removed = Some(text(removed));
    l.usable = Some(text(usable));
    l
}

/// `n` lines were dropped before `time` because the reader fell behind.
pub fn lost_line(time: f64, n: u64) -> MonitorLine {
    let mut l = MonitorLine::new(Kind::Lost, time, None, "lost");
    l.lines = Some(n);
    l
}

/// `time` (seconds since the epoch) as `HH:MM:SS.mmm` UTC.
fn clock(time: f64) -> String {
    if !time.is_finite() || time < 0.0 {
        return "--:--:--.---".into();
    }
    // Whole milliseconds since the epoch, then split; an f64 holds them exactly for millennia.
    let ms = (time * 1000.0).round() as u64;
    let day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        day / 60_000 % 60,
        day / 1000 % 60,
        day % 1000
    )
}

/// One monitor line as readable columns: `TIME KIND TOKEN NAME what`.
pub fn render_line(l: &MonitorLine) -> String {
    let mut what = String::new();
    let path = match (&l.local, &l.remote) {
        (Some(a), Some(b)) => format!("{a} -> {b}"),
        (Some(a), None) => a.clone(),
        (None, Some(b)) => format!("peer {b}"),
        (None, None) => String::new(),
    };
    what.push_str(&path);
    let mut add = |s: String| {
        if !what.is_empty() {
            what.push_str("  ");
        }
        what.push_str(&s);
    };
    if let Some(id) = l.loc_id {
        add(format!("id {id}"));
    }
    if let Some(id) = l.rem_id.filter(|_| l.kind == Kind::Event) {
        add(format!("rem_id {id}"));
    }
    if l.backup == Some(true) {
        add("backup".into());
    }
    if l.server_side == Some(true) {
        add("server side".into());
    }
    if let Some(e) = l.error {
        add(format!("socket error {e}"));
    }
    match l.kind {
        Kind::Decision => {
            add(format!(
                "{} ({})",
                l.policy.as_deref().unwrap_or("?"),
                l.rule.as_deref().unwrap_or("?")
            ));
            add(format!(
                "{}: {}",
                l.reason.as_deref().unwrap_or("?"),
                l.why.as_deref().unwrap_or("")
            ));
            if l.dry_run == Some(true) {
                add("DRY RUN, not carried out".into());
            }
        }
        Kind::Command => {
            if l.origin == Some(Origin::Operator) {
                add(format!(
                    "by operator uid {} pid {}",
                    l.uid.unwrap_or(0),
                    l.pid.unwrap_or(0)
                ));
            }
            match (l.result.as_deref(), l.errno) {
                (Some("ok"), _) => add("ok".into()),
                (r, Some(errno)) => add(format!(
                    "{} errno {errno}: {}",
                    r.unwrap_or("refused"),
                    l.message.as_deref().unwrap_or("no message")
                )),
                (r, None) => add(r.unwrap_or("?").to_string()),
            }
        }
        Kind::Address => {
            let list = |v: &Option<Vec<String>>| v.as_deref().unwrap_or_default().join(" ");
            add(format!(
                "added [{}] removed [{}] usable [{}]",
                list(&l.added),
                list(&l.removed),
                list(&l.usable)
            ));
        }
        Kind::Lost => add(format!(
            "{} line(s) dropped: this reader fell behind",
            l.lines.unwrap_or(0)
        )),
        Kind::Event => {
            if let Some(m) = &l.message {
                add(m.clone());
            }
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "{} {:<8} {:<8} {:<16} {}",
        clock(l.time),
        l.kind.name(),
        l.token.as_deref().unwrap_or("-"),
        l.name,
        what
    );
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_pmd_policies::policy::Reason;
    use mptcp_pmd_policies::{ConnFlags, ConnInfo, SubflowInfo};

    fn parse(s: &str) -> Result<Request, RequestError> {
        parse_request(s.as_bytes())
    }

    fn code(s: &[u8]) -> ErrorCode {
        match parse_request(s) {
            Err(e) => e.code,
            Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(s)),
        }
    }

    const T: &str = "\"token\":\"0000abcd\"";

    #[test]
    fn every_command_parses_and_round_trips() {
        let lines = [
            r#"{"v":1,"cmd":"status"}"#.to_string(),
            r#"{"v":1,"cmd":"addresses"}"#.to_string(),
            r#"{"v":1,"cmd":"monitor"}"#.to_string(),
            format!(r#"{{"v":1,"cmd":"monitor","kinds":["event","command"],{T}}}"#),
            format!(
                r#"{{"v":1,"cmd":"subflow_create",{T},"local":"10.0.0.2","remote":"10.0.1.1:80"}}"#
            ),
            format!(
                r#"{{"v":1,"cmd":"subflow_create",{T},"local":"2001:db8::2","remote":"[2001:db8::1]:80","backup":true}}"#
            ),
            format!(
                r#"{{"v":1,"cmd":"subflow_destroy",{T},"local":"10.0.0.2:4000","remote":"10.0.1.1:80"}}"#
            ),
            format!(
                r#"{{"v":1,"cmd":"subflow_backup",{T},"local":"10.0.0.2:4000","remote":"10.0.1.1:80","backup":false}}"#
            ),
            format!(r#"{{"v":1,"cmd":"announce",{T},"addr":"10.0.0.3"}}"#),
            format!(r#"{{"v":1,"cmd":"announce",{T},"addr":"10.0.0.3","id":7}}"#),
            format!(r#"{{"v":1,"cmd":"withdraw",{T},"id":7}}"#),
            format!(r#"{{"v":1,"cmd":"hold",{T}}}"#),
            format!(r#"{{"v":1,"cmd":"release",{T}}}"#),
        ];
        let mut names = std::collections::BTreeSet::new();
        for l in &lines {
            let r = parse(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            names.insert(r.name());
            let again = r.to_line();
            assert!(again.ends_with('\n') && again.matches('\n').count() == 1);
            assert_eq!(parse(&again), Ok(r.clone()), "{l} -> {again}");
            if let Request::Command { token, .. } = r {
                assert_eq!(token, Token(0xabcd));
            }
        }
        assert_eq!(names.len(), COMMANDS.len(), "every command covered");
        // With a newline, CRLF, surrounding blanks.
        assert_eq!(
            parse("{\"v\":1,\"cmd\":\"status\"}\r\n"),
            Ok(Request::Status)
        );
        assert_eq!(parse("  status \n"), Ok(Request::Status));
        assert_eq!(parse("addresses"), Ok(Request::Addresses));
    }

    #[test]
    fn monitor_filters() {
        let Ok(Request::Monitor(f)) = parse(&format!(
            r#"{{"v":1,"cmd":"monitor","kinds":["decision"],{T}}}"#
        )) else {
            panic!()
        };
        assert!(f.matches(Kind::Decision, Some(Token(0xabcd))));
        assert!(!f.matches(Kind::Decision, Some(Token(1))));
        assert!(!f.matches(Kind::Event, Some(Token(0xabcd))));
        assert!(
            !f.matches(Kind::Address, None),
            "token filter drops token-less lines"
        );
        assert!(f.matches(Kind::Lost, None), "lost always passes");
        let all = MonitorFilter::default();
        for k in Kind::SUBSCRIBABLE {
            assert!(all.matches(k, None) && all.matches(k, Some(Token(5))));
        }
        assert_eq!(all.kinds(), Kind::SUBSCRIBABLE.to_vec());
        assert_eq!(
            code(br#"{"v":1,"cmd":"monitor","kinds":["lost"]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(br#"{"v":1,"cmd":"monitor","kinds":["nope"]}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn bad_requests_get_a_clear_code_and_message() {
        let big = vec![b'a'; 64 * 1024];
        assert_eq!(code(&big), ErrorCode::TooLarge);
        assert_eq!(code(&[0xff, 0xfe, b'\n']), ErrorCode::BadRequest);
        assert_eq!(code(b"\x00\x01\x02binary"), ErrorCode::UnknownCommand);
        assert_eq!(code(b""), ErrorCode::BadRequest);
        assert_eq!(code(b"\n"), ErrorCode::BadRequest);
        assert_eq!(code(b"status\nstatus\n"), ErrorCode::BadRequest);
        assert_eq!(code(b"stats"), ErrorCode::UnknownCommand);
        assert_eq!(code(b"{"), ErrorCode::BadRequest);
        assert_eq!(code(b"{}"), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"cmd":"status"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"v":2,"cmd":"status"}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(code(br#"{"v":"1","cmd":"status"}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"v":1,"cmd":7}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"v":1,"cmd":"reboot"}"#),
            ErrorCode::UnknownCommand
        );
        assert_eq!(
            code(br#"{"v":1,"cmd":"status","extra":1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code(br#"[1,2]"#), ErrorCode::UnknownCommand);
        let cases: [&[u8]; 9] = [
            br#"{"v":1,"cmd":"hold"}"#,
            br#"{"v":1,"cmd":"hold","token":"xyz"}"#,
            br#"{"v":1,"cmd":"hold","token":"123456789"}"#,
            br#"{"v":1,"cmd":"subflow_create","token":"1","local":"10.0.0.300","remote":"10.0.1.1:80"}"#,
            br#"{"v":1,"cmd":"subflow_create","token":"1","local":"10.0.0.3","remote":"10.0.1.1"}"#,
            br#"{"v":1,"cmd":"subflow_destroy","token":"1","local":"10.0.0.3:0","remote":"10.0.1.1:80"}"#,
            br#"{"v":1,"cmd":"subflow_backup","token":"1","local":"10.0.0.3:5","remote":"[::1]:80","backup":true}"#,
            br#"{"v":1,"cmd":"announce","token":"1","addr":"10.0.0.3","id":0}"#,
            br#"{"v":1,"cmd":"withdraw","token":"1","id":256}"#,
        ];
        for c in cases {
            let e = parse_request(c).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::BadRequest,
                "{}: {e}",
                String::from_utf8_lossy(c)
            );
            assert!(!e.message.is_empty());
        }
        // Messages name the problem.
        let e = parse(r#"{"v":1,"cmd":"subflow_create","token":"1","local":"10.0.0.2","remote":"10.0.1.1:80","bakup":true}"#).unwrap_err();
        assert!(e.message.contains("bakup"), "{e}");
        let e = parse_request(&big).unwrap_err();
        assert!(e.message.contains("4096"), "{e}");
        let e = parse_request(&[b'{', 0xc3, 0x28, b'}']).unwrap_err();
        assert!(e.message.contains("UTF-8"), "{e}");
        // A long unknown word is echoed clipped.
        let e = parse(&"x".repeat(1000)).unwrap_err();
        assert!(e.message.len() < 300, "{e}");
        // Every error reply is one line of JSON with ok:false and the code.
        let line = Reply::error(&e).to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["v"], 1);
        assert_eq!(v["code"], "unknown_command");
    }

    /// docs/CONTROL.md names every command, error code, kind and limit of the code, and every
    /// example in it parses as what it shows.
    #[test]
    fn the_control_doc_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONTROL.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for cmd in COMMANDS {
            assert!(
                doc.contains(&format!("`{cmd}`")) || doc.contains(&format!("\"cmd\":\"{cmd}\"")),
                "{cmd} missing"
            );
        }
        let codes = [
            ErrorCode::BadRequest,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnknownCommand,
            ErrorCode::Forbidden,
            ErrorCode::Busy,
            ErrorCode::NoConnection,
            ErrorCode::Refused,
            ErrorCode::KernelRefused,
            ErrorCode::DryRun,
            ErrorCode::Unavailable,
        ];
        for c in codes {
            let name = serde_json::to_value(c).unwrap();
            let name = name.as_str().unwrap();
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("no row for error code {name}"));
            let exit = row.rsplit('|').nth(1).unwrap().trim();
            assert_eq!(
                exit,
                crate::endpoints::client::exit_code(Some(c)).to_string(),
                "exit code of {name}"
            );
        }
        for k in Kind::SUBSCRIBABLE.into_iter().chain([Kind::Lost]) {
            assert!(doc.contains(&format!("| `{}` |", k.name())), "kind {k:?}");
        }
        for (what, n) in [
            ("request size", REQUEST_LIMIT),
            (
                "requests served at once",
                super::super::control::MAX_CLIENTS,
            ),
            (
                "monitors attached at once",
                super::super::monitor::MAX_MONITORS,
            ),
            (
                "monitor queue per client",
                super::super::monitor::QUEUE_LINES,
            ),
        ] {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {what} |")))
                .unwrap_or_else(|| panic!("no limit row {what}"));
            assert!(row.contains(&format!("| {n}")), "{what}: {row}");
        }
        let (mut requests, mut replies, mut lines) = (0, 0, 0);
        for l in doc.lines().map(str::trim) {
            if l.starts_with("{\"v\":1,\"cmd\"") {
                parse(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                requests += 1;
            } else if l.starts_with("{\"v\":1,\"ok\"") {
                let r: Reply = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                assert_ne!(r.code, Some(ErrorCode::Other), "{l}");
                replies += 1;
            } else if l.starts_with("{\"kind\"") {
                let m: MonitorLine = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                assert!(!render_line(&m).is_empty());
                lines += 1;
            }
        }
        assert!(requests >= COMMANDS.len() && replies >= 5 && lines >= 5);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("ééééé", 2), "éé...");
        assert_eq!(clip("ab", 5), "ab");
    }

    #[test]
    fn root_commands_the_group_reads_others_nothing() {
        let root = Peer {
            uid: 0,
            gid: 0,
            pid: 1,
            groups: vec![],
        };
        let member = Peer {
            uid: 1000,
            gid: 1000,
            pid: 2,
            groups: vec![4242],
        };
        let primary = Peer {
            uid: 1001,
            gid: 4242,
            pid: 3,
            groups: vec![],
        };
        let other = Peer {
            uid: 65534,
            gid: 65534,
            pid: 4,
            groups: vec![100],
        };
        let hold = Request::Command {
            token: Token(1),
            op: Op::Hold,
        };
        let reads = [
            Request::Status,
            Request::Addresses,
            Request::Monitor(MonitorFilter::default()),
        ];
        for g in [None, Some(4242)] {
            assert!(authorize(&root, g, &hold).is_ok());
            for r in &reads {
                assert!(authorize(&root, g, r).is_ok());
                assert_eq!(
                    authorize(&other, g, r).unwrap_err().code,
                    ErrorCode::Forbidden
                );
            }
            assert_eq!(
                authorize(&other, g, &hold).unwrap_err().code,
                ErrorCode::Forbidden
            );
        }
        for p in [&member, &primary] {
            for r in &reads {
                assert!(authorize(p, Some(4242), r).is_ok());
                assert!(authorize(p, None, r).is_err(), "no group configured");
            }
            let e = authorize(p, Some(4242), &hold).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden);
            assert!(e.message.contains("only root"), "{e}");
        }
    }

    #[test]
    fn lines_for_events_decisions_commands_addresses() {
        let info = ConnInfo {
            token: Token(0xab),
            local: "10.0.0.2:4000".parse().unwrap(),
            remote: "10.0.1.1:80".parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags::default(),
        };
        let l = event_line(1.5, &PmEvent::Established(info));
        assert_eq!((l.kind, l.name.as_str()), (Kind::Event, "established"));
        assert_eq!(l.token.as_deref(), Some("000000ab"));
        let v: serde_json::Value = serde_json::from_str(&l.to_line()).unwrap();
        assert_eq!(v["kind"], "event");
        assert_eq!(v["time"], 1.5);
        assert!(v.get("policy").is_none(), "absent fields are left out: {v}");
        let sub = SubflowInfo {
            token: Token(0xab),
            local: "10.0.0.3:5000".parse().unwrap(),
            remote: "10.0.1.1:80".parse().unwrap(),
            loc_id: 1,
            rem_id: 0,
            backup: true,
            if_idx: None,
            error: Some(111),
            reset_reason: None,
            reset_flags: None,
        };
        let text = render_line(&event_line(3661.25, &PmEvent::SubClosed(sub)));
        assert!(
            text.starts_with("01:01:01.250 event    000000ab sub_closed"),
            "{text}"
        );
        assert!(
            text.contains("10.0.0.3:5000 -> 10.0.1.1:80") && text.contains("socket error 111"),
            "{text}"
        );

        let d = Decision::new(
            Action::Open {
                local: "10.0.0.3".parse().unwrap(),
                if_index: None,
                remote: "10.0.1.1:80".parse().unwrap(),
                backup: false,
                timeout: None,
            },
            Reason::fixed("mesh", "new pair"),
        );
        let l = decision_line(2.0, Token(0xab), "fullmesh", "default", &d, true);
        assert_eq!(l.local.as_deref(), Some("10.0.0.3"));
        assert_eq!(l.dry_run, Some(true));
        let text = render_line(&l);
        assert!(
            text.contains("open") && text.contains("10.0.0.3 -> 10.0.1.1:80"),
            "{text}"
        );
        assert!(
            text.contains("mesh: new pair") && text.contains("DRY RUN"),
            "{text}"
        );

        let cmd = PmCommand::CreateSubflow {
            token: Token(0xab),
            local: "10.0.0.3".parse().unwrap(),
            local_id: 1,
            if_index: None,
            remote: "10.0.1.1:80".parse().unwrap(),
            backup: false,
        };
        let refused = Err(KernelRefusal {
            errno: 22,
            message: Some("did not match address and id".into()),
        });
        let l = command_line(3.0, &cmd, Origin::Operator, Some((0, 77)), &refused);
        assert_eq!((l.errno, l.result.as_deref()), (Some(22), Some("refused")));
        let text = render_line(&l);
        assert!(text.contains("by operator uid 0 pid 77"), "{text}");
        assert!(
            text.contains("errno 22: did not match address and id"),
            "{text}"
        );
        let ok = command_line(3.0, &cmd, Origin::Policy, None, &Ok(()));
        let v: serde_json::Value = serde_json::from_str(&ok.to_line()).unwrap();
        assert_eq!(
            (v["origin"].as_str(), v["result"].as_str()),
            (Some("policy"), Some("ok"))
        );

        let a: IpAddr = "10.0.0.3".parse().unwrap();
        let l = address_line(4.0, &[a], &[], &[a]);
        assert!(l.token.is_none());
        assert!(render_line(&l).contains("added [10.0.0.3]"));
        let l = lost_line(5.0, 12);
        assert!(render_line(&l).contains("12 line(s) dropped"));
        let back: MonitorLine = serde_json::from_str(&l.to_line()).unwrap();
        assert_eq!(back, l);
    }
}
