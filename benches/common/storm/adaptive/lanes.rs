//! The lanes of the adaptive part: `fireworks::layer` with each of the gate's rate controls,
//! and the storm's other strategies for context.

use std::sync::Arc;

use tokio::time::Instant;
use tower_reliability::rate_limit::{GateConfig, LocalStore, RateControl, RateLimitAware};

use super::zone::ZONE;
use crate::{
    storm::{
        config::StormConfig,
        load::Lane,
        strategies::{Fireworks, Kind, Strategy},
    },
    traffic::record::RunLog,
};

/// One lane of this part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contender {
    /// `fireworks::layer` with this rate control in its gate.
    Gate(Control),
    /// Another strategy of the storm.
    Peer(Kind),
}

/// The gate's rate controls compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Cubic,
    Aimd,
    Off,
}

impl Control {
    fn rate_control(self) -> RateControl {
        match self {
            Control::Cubic => RateControl::CUBIC,
            Control::Aimd => RateControl::AIMD,
            Control::Off => RateControl::Off,
        }
    }
}

impl Contender {
    fn all(peers: bool) -> Vec<Contender> {
        let mut all = vec![
            Contender::Gate(Control::Cubic),
            Contender::Gate(Control::Aimd),
            Contender::Gate(Control::Off),
        ];
        if peers {
            all.extend(
                Kind::ALL
                    .iter()
                    .filter(|&&kind| kind != Kind::Fireworks)
                    .map(|&kind| Contender::Peer(kind)),
            );
        }
        all
    }

    pub fn name(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "fireworks::layer, CUBIC (default)",
            Contender::Gate(Control::Aimd) => "fireworks::layer, AIMD",
            Contender::Gate(Control::Off) => "fireworks::layer, rate control off",
            Contender::Peer(kind) => kind.name(),
        }
    }

    /// A short name for the plot's legend.
    pub fn short(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "CUBIC",
            Contender::Gate(Control::Aimd) => "AIMD",
            Contender::Gate(Control::Off) => "rate control off",
            Contender::Peer(kind) => kind.name(),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Contender::Gate(Control::Cubic) => "cubic",
            Contender::Gate(Control::Aimd) => "aimd",
            Contender::Gate(Control::Off) => "off",
            Contender::Peer(kind) => kind.slug(),
        }
    }
}

/// A lane and, for the gated ones, the store whose learned rate is sampled.
pub struct Running {
    pub contender: Contender,
    pub lane: Lane,
    pub store: Option<Arc<LocalStore>>,
}

/// Every lane of the run, each on its own path of the zone at `base`, its log's clock starting
/// at `start`. A gated lane is `fireworks::layer` with its total deadline set to the run's and
/// its gate on a store of its own (the storm's `Kind::Fireworks`, with the gate swapped).
pub fn lanes(config: &StormConfig, base: &str, start: Instant) -> Vec<Running> {
    Contender::all(config.adaptive_peers)
        .into_iter()
        .map(|contender| {
            let log = RunLog::new(start);
            let url = format!("{base}/nohint/{ZONE}/{}", contender.slug());
            let (strategy, store): (Arc<dyn Strategy>, _) = match contender {
                Contender::Gate(control) => {
                    let store = Arc::new(LocalStore::new(
                        GateConfig::default().with_rate_control(control.rate_control()),
                    ));
                    let gated = Fireworks::new(
                        url.parse().expect("a valid URL"),
                        config.deadline,
                        log.clone(),
                        RateLimitAware::with_store(store.clone()),
                    );
                    (Arc::new(gated), Some(store))
                }
                Contender::Peer(kind) => (kind.build(&url, config.deadline, log.clone()), None),
            };
            Running {
                contender,
                lane: Lane { strategy, log },
                store,
            }
        })
        .collect()
}
