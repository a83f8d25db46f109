//! The plugin API: what a policy file provides so that the daemon can configure, build and run
//! it without knowing it by name.
//!
//! A policy is one file that defines
//! - its parameter struct: serde `Deserialize` + `Serialize`, `Default` (the documented
//!   defaults), `#[serde(default, deny_unknown_fields)]`, implementing [`PolicyParams`]
//!   (cross-field validation and the factory that builds a [`Policy`] for one connection);
//! - `pub static PLUGIN: Plugin = Plugin::new::<Params>(name, section, about)`, with
//!   `.serving(Serves::Client)` (or `Server`) when it acts on one side of connections only, so
//!   that a rule giving it the other side is refused (its connections would get nothing);
//!
//! and the registry table in `lib.rs` lists the plugin. The config crate parses each registered
//! section with [`Plugin::parse`] and hands the daemon a [`PolicySpec`]: the plugin and its
//! validated parameters, type-erased ([`PolicyConfig`]).
//!
//! **One policy object per connection.** [`PolicySpec::build`] is called once for every
//! connection the spec serves, and the object lives exactly as long as the daemon tracks the
//! connection. A policy therefore keeps per-connection memory in plain fields: nothing is keyed
//! by token, and nothing can be left behind by a close the daemon missed (dropping the object
//! is the clean-up).

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::params::{from_node, Keys, Node, ParamError};
use crate::policy::Policy;

/// The parameters of one policy: what its YAML section holds, and the factory of its
/// per-connection policy objects.
pub trait PolicyParams:
    DeserializeOwned + Serialize + Default + Clone + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// Checks across fields, after every field passed its own check during deserialization.
    /// Report with [`ParamError::check`], spelling keys with `keys.key("field")`.
    fn validate(&self, _keys: &Keys) -> Result<(), ParamError> {
        Ok(())
    }

    /// A new policy object for one connection.
    fn build(&self) -> Box<dyn Policy>;

    /// Whether the built policy reads subflow health samples (`Policy::on_samples`,
    /// `Subflow::sample`). The daemon dumps every subflow's `tcp_info` each poll only while
    /// some configured policy says yes; otherwise it polls the much cheaper connection list.
    fn wants_samples(&self) -> bool {
        false
    }

    /// How often the connections this policy serves must be sampled, when the policy needs
    /// it faster than the daemon's `poll.interval_ms` (a failure detector reads every
    /// subflow's `tcp_info` every few tens of ms). `None`: the daemon's poll period is enough.
    /// Only meaningful with [`PolicyParams::wants_samples`]; the daemon samples just the
    /// connections of such a policy at this period, so the cost grows with their number only.
    fn sample_period(&self) -> Option<Duration> {
        None
    }
}

/// [`PolicyParams`] behind a pointer: what the config and the daemon hold. Implemented for
/// every `PolicyParams` type; not meant to be implemented by hand.
pub trait PolicyConfig: fmt::Debug + Send + Sync {
    /// A new policy object for one connection.
    fn build(&self) -> Box<dyn Policy>;
    /// See [`PolicyParams::wants_samples`].
    fn wants_samples(&self) -> bool;
    /// See [`PolicyParams::sample_period`].
    fn sample_period(&self) -> Option<Duration>;
    /// The parameters, for rendering the effective configuration.
    fn as_serialize(&self) -> &dyn erased_serde::Serialize;
    /// The parameters as `Any`, for typed access ([`PolicySpec::params`]).
    fn as_any(&self) -> &dyn Any;
    /// Equality with another erased value (false if the types differ).
    fn dyn_eq(&self, other: &dyn PolicyConfig) -> bool;
}

impl<P: PolicyParams> PolicyConfig for P {
    fn build(&self) -> Box<dyn Policy> {
        PolicyParams::build(self)
    }
    fn wants_samples(&self) -> bool {
        PolicyParams::wants_samples(self)
    }
    fn sample_period(&self) -> Option<Duration> {
        PolicyParams::sample_period(self)
    }
    fn as_serialize(&self) -> &dyn erased_serde::Serialize {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_eq(&self, other: &dyn PolicyConfig) -> bool {
        other.as_any().downcast_ref::<P>() == Some(self)
    }
}

/// Reads and validates one policy's section.
type ParseFn = fn(&Node, &Keys) -> Result<Arc<dyn PolicyConfig>, ParamError>;

/// Which connections a policy acts on: the config refuses a rule whose `side` matcher gives a
/// policy only connections it leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Connections this host dialled (the client side).
    Client,
    /// Connections this host accepted on a listening socket (the server side).
    Server,
    /// Both sides (what [`Plugin::new`] assumes until [`Plugin::serving`] says otherwise).
    Both,
}

impl Serves {
    /// True if the policy acts on connections of this side (`server_side`: accepted here).
    pub fn covers(self, server_side: bool) -> bool {
        match self {
            Serves::Client => !server_side,
            Serves::Server => server_side,
            Serves::Both => true,
        }
    }
}

/// A compiled-in policy: its names and how to read its parameters.
pub struct Plugin {
    /// The name `policy:` uses (lower case, `-` between words).
    pub name: &'static str,
    /// The key of its parameter section (the name with `_` for `-`).
    pub section: &'static str,
    /// One line for listings.
    pub about: &'static str,
    /// Which connections it acts on.
    pub serves: Serves,
    parse: ParseFn,
    default: fn() -> Arc<dyn PolicyConfig>,
}

fn parse_as<P: PolicyParams>(
    node: &Node,
    keys: &Keys,
) -> Result<Arc<dyn PolicyConfig>, ParamError> {
    let params: P = from_node(node, keys)?;
    params.validate(keys)?;
    Ok(Arc::new(params))
}

fn default_of<P: PolicyParams>() -> Arc<dyn PolicyConfig> {
    Arc::new(P::default())
}

impl Plugin {
    /// The registry entry of a policy whose parameters are `P`.
    pub const fn new<P: PolicyParams>(
        name: &'static str,
        section: &'static str,
        about: &'static str,
    ) -> Plugin {
        Plugin {
            name,
            section,
            about,
            serves: Serves::Both,
            parse: parse_as::<P>,
            default: default_of::<P>,
        }
    }

    /// This entry for a policy that acts on connections of one side only.
    pub const fn serving(self, serves: Serves) -> Plugin {
        Plugin { serves, ..self }
    }

    /// Reads and validates this policy's section (`keys` spells its full key names).
    pub fn parse(&'static self, node: &Node, keys: &Keys) -> Result<PolicySpec, ParamError> {
        Ok(PolicySpec {
            plugin: self,
            params: (self.parse)(node, keys)?,
        })
    }

    /// This policy with its default parameters.
    pub fn default_spec(&'static self) -> PolicySpec {
        PolicySpec {
            plugin: self,
            params: (self.default)(),
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Plugin {
    fn eq(&self, other: &Plugin) -> bool {
        self.name == other.name
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for Plugin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// A configured policy: which plugin, with which validated parameters. Cheap to clone.
#[derive(Clone)]
pub struct PolicySpec {
    /// The policy.
    pub plugin: &'static Plugin,
    params: Arc<dyn PolicyConfig>,
}

impl PolicySpec {
    /// The policy's name.
    pub fn name(&self) -> &'static str {
        self.plugin.name
    }

    /// A new policy object for one connection.
    pub fn build(&self) -> Box<dyn Policy> {
        self.params.build()
    }

    /// See [`PolicyParams::wants_samples`].
    pub fn wants_samples(&self) -> bool {
        self.params.wants_samples()
    }

    /// See [`PolicyParams::sample_period`].
    pub fn sample_period(&self) -> Option<Duration> {
        self.params.sample_period()
    }

    /// The parameters, if they are a `P`.
    pub fn params<P: PolicyParams>(&self) -> Option<&P> {
        self.params.as_any().downcast_ref::<P>()
    }

    /// A spec of the same plugin with these parameters (tests, programmatic configs).
    pub fn with<P: PolicyParams>(plugin: &'static Plugin, params: P) -> PolicySpec {
        PolicySpec {
            plugin,
            params: Arc::new(params),
        }
    }
}

impl fmt::Debug for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.plugin.name, self.params)
    }
}

impl PartialEq for PolicySpec {
    fn eq(&self, other: &PolicySpec) -> bool {
        self.plugin == other.plugin && self.params.dyn_eq(other.params.as_ref())
    }
}

/// Serialises the parameters (the section's content).
impl Serialize for PolicySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize(self.params.as_serialize(), s)
    }
}

/// Every compiled-in policy, in documentation order; the first is the default policy.
pub fn all() -> &'static [&'static Plugin] {
    crate::REGISTRY
}

/// The policy `policy:` calls `name`.
pub fn find(name: &str) -> Option<&'static Plugin> {
    all().iter().copied().find(|p| p.name == name)
}

/// The policy whose parameter section is `section`.
pub fn find_section(section: &str) -> Option<&'static Plugin> {
    all().iter().copied().find(|p| p.section == section)
}

/// The policy used when the config names none (the registry's first entry).
pub fn default_plugin() -> &'static Plugin {
    // The registry is a non-empty static table (checked by a test); index 0 exists.
    all()[0]
}

/// `a, b, c` of every policy name (for messages).
pub fn names() -> String {
    all().iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}
