//! [`Limiters`]: which [`ModelLimits`] each model has (its own, else every model's), and the
//! live buckets of each model, created when the model is first asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::config::ServerConfig;
use super::model_buckets::ModelBuckets;
use super::model_limits::ModelLimits;
use super::state::lock;

/// One model's buckets, shared by its requests and the streams they are still producing.
pub(crate) type Lane = Arc<Mutex<ModelBuckets>>;

/// The limits of every model and their buckets.
#[derive(Debug, Default)]
pub(crate) struct Limiters {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    every_model: Option<ModelLimits>,
    own: HashMap<String, ModelLimits>,
    lanes: HashMap<String, Lane>,
}

impl Limiters {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let registry = Registry {
            every_model: config.model_limits,
            own: config.limits_for.iter().cloned().collect(),
            lanes: HashMap::new(),
        };
        Self {
            inner: Mutex::new(registry),
        }
    }

    /// The buckets of `model`, `None` if it has no limits.
    pub(crate) fn lane(&self, model: &str) -> Option<Lane> {
        let mut registry = lock(&self.inner);
        if let Some(lane) = registry.lanes.get(model) {
            return Some(Arc::clone(lane));
        }
        let limits = registry.own.get(model).or(registry.every_model.as_ref())?;
        let lane = Arc::new(Mutex::new(ModelBuckets::new(*limits)));
        registry.lanes.insert(model.to_owned(), Arc::clone(&lane));
        Some(lane)
    }

    /// Replaces the limits of every model without its own; their buckets start again.
    pub(crate) fn set_default(&self, limits: Option<ModelLimits>) {
        let mut registry = lock(&self.inner);
        registry.every_model = limits;
        let Registry { own, lanes, .. } = &mut *registry;
        lanes.retain(|model, _| own.contains_key(model));
    }

    /// Gives `model` its own limits (or, with `None`, every model's); its buckets start again.
    pub(crate) fn set_for(&self, model: &str, limits: Option<ModelLimits>) {
        let mut registry = lock(&self.inner);
        match limits {
            Some(limits) => registry.own.insert(model.to_owned(), limits),
            None => registry.own.remove(model),
        };
        registry.lanes.remove(model);
    }
}
