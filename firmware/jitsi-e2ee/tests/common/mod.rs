//! Several `JitsiE2ee` instances talking through their `Send` outputs, on virtual time.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cloakroom_frame::KeyMaterial;
use cloakroom_jitsi_e2ee::{E2eeError, E2eeOutput, JitsiE2ee, SasEvent};

/// One message in flight or delivered.
#[derive(Debug, Clone)]
pub struct Wire {
    pub from: String,
    pub to: String,
    pub json: String,
}

/// Sees each message before delivery; may change it; returns whether to deliver it.
pub type Tamper = Box<dyn FnMut(&mut Wire) -> bool>;

/// A conference of instances; what each one reported is recorded.
pub struct Net {
    pub now: Instant,
    pub peers: BTreeMap<String, JitsiE2ee>,
    /// Messages not yet delivered.
    pub queue: VecDeque<Wire>,
    /// Every message any instance sent, in order (also those to peers that are gone).
    pub sent: Vec<Wire>,
    /// OwnKey outputs per instance, in order.
    pub own_keys: BTreeMap<String, Vec<(u8, KeyMaterial)>>,
    /// ParticipantKey outputs per (receiver, participant), in order.
    pub participant_keys: BTreeMap<(String, String), Vec<(u8, KeyMaterial)>>,
    /// SAS events per (instance, participant), in order.
    pub sas: BTreeMap<(String, String), Vec<SasEvent>>,
    /// Errors handle_message returned, with the receiver.
    pub errors: Vec<(String, E2eeError)>,
    /// When set, messages are queued but a filter may drop or change them.
    pub tamper: Option<Tamper>,
}

impl Net {
    pub fn new() -> Self {
        Self {
            now: Instant::now(),
            peers: BTreeMap::new(),
            queue: VecDeque::new(),
            sent: Vec::new(),
            own_keys: BTreeMap::new(),
            participant_keys: BTreeMap::new(),
            sas: BTreeMap::new(),
            errors: Vec::new(),
            tamper: None,
        }
    }

    /// A new instance joins: it and everyone present learn of each other from presence.
    pub fn join(&mut self, id: &str) {
        let newcomer = JitsiE2ee::new(id);
        let keys = newcomer.identity_keys();
        let now = self.now;
        let others: Vec<String> = self.peers.keys().cloned().collect();
        self.peers.insert(id.to_owned(), newcomer);
        for other in others {
            let other_keys = self.peers[&other].identity_keys();
            self.peer(&other).participant_joined(now, id, keys.clone());
            self.peer(id).participant_joined(now, &other, other_keys);
        }
        self.drain_all();
    }

    /// `id` leaves: it stops, everyone else sees it go.
    pub fn leave(&mut self, id: &str) {
        self.peers.remove(id);
        let now = self.now;
        for peer in self.peers.values_mut() {
            peer.participant_left(now, id);
        }
        self.drain_all();
    }

    pub fn peer(&mut self, id: &str) -> &mut JitsiE2ee {
        self.peers.get_mut(id).expect("a peer of the test")
    }

    /// Collects the outputs of every instance.
    pub fn drain_all(&mut self) {
        let ids: Vec<String> = self.peers.keys().cloned().collect();
        for id in ids {
            self.drain(&id);
        }
    }

    /// Collects `id`'s outputs; returns them as they came.
    pub fn drain(&mut self, id: &str) -> Vec<Output> {
        let mut seen = Vec::new();
        while let Some(out) = self.peer(id).poll_output() {
            match out {
                E2eeOutput::Send { to, json } => {
                    let wire = Wire { from: id.to_owned(), to, json };
                    self.sent.push(wire.clone());
                    self.queue.push_back(wire.clone());
                    seen.push(Output::Send(wire));
                }
                E2eeOutput::OwnKey { index, material } => {
                    self.own_keys.entry(id.to_owned()).or_default().push((index, material));
                    seen.push(Output::OwnKey(index));
                }
                E2eeOutput::ParticipantKey { participant, index, material } => {
                    self.participant_keys
                        .entry((id.to_owned(), participant.clone()))
                        .or_default()
                        .push((index, material));
                    seen.push(Output::ParticipantKey(participant, index));
                }
                E2eeOutput::Sas { participant, event } => {
                    self.sas.entry((id.to_owned(), participant.clone())).or_default().push(event.clone());
                    seen.push(Output::Sas(participant, event));
                }
            }
        }
        seen
    }

    /// Delivers messages until none is left.
    pub fn run(&mut self) {
        self.drain_all();
        let mut steps = 0;
        while let Some(mut wire) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 10_000, "the instances keep talking");
            if let Some(tamper) = self.tamper.as_mut() {
                if !tamper(&mut wire) {
                    continue;
                }
            }
            let now = self.now;
            let Some(peer) = self.peers.get_mut(&wire.to) else { continue };
            if let Err(e) = peer.handle_message(now, &wire.from, &wire.json) {
                self.errors.push((wire.to.clone(), e));
            }
            let to = wire.to.clone();
            self.drain(&to);
        }
    }

    /// Moves virtual time on, fires due timeouts, delivers what follows.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        for peer in self.peers.values_mut() {
            if peer.poll_timeout().is_some_and(|t| t <= now) {
                peer.handle_timeout(now);
            }
        }
        self.run();
    }

    pub fn last_own_key(&self, id: &str) -> (u8, KeyMaterial) {
        self.own_keys[id].last().cloned().expect("an own key")
    }

    pub fn last_participant_key(&self, receiver: &str, participant: &str) -> Option<(u8, KeyMaterial)> {
        self.participant_keys.get(&(receiver.to_owned(), participant.to_owned())).and_then(|k| k.last().cloned())
    }

    pub fn sas_events(&self, id: &str, participant: &str) -> Vec<SasEvent> {
        self.sas.get(&(id.to_owned(), participant.to_owned())).cloned().unwrap_or_default()
    }

    /// Asserts every instance holds every other's current key.
    pub fn assert_all_keys_known(&self) {
        for receiver in self.peers.keys() {
            for sender in self.peers.keys().filter(|s| *s != receiver) {
                let own = self.last_own_key(sender);
                let known = self
                    .last_participant_key(receiver, sender)
                    .unwrap_or_else(|| panic!("{receiver} has no key of {sender}"));
                assert_eq!(known.0, own.0, "{receiver}'s key index for {sender}");
                assert!(known.1 == own.1, "{receiver}'s key material for {sender} is {sender}'s own");
            }
        }
    }

    /// Messages sent of one Olm type ("key-info", "sas-mac", …).
    pub fn sent_of_type(&self, kind: &str) -> Vec<Wire> {
        self.sent.iter().filter(|w| olm_type(&w.json) == kind).cloned().collect()
    }
}

/// What an instance output, without the key material.
#[derive(Debug)]
pub enum Output {
    Send(Wire),
    OwnKey(u8),
    ParticipantKey(String, u8),
    Sas(String, SasEvent),
}

/// The `olm.type` of a message.
pub fn olm_type(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("our messages are JSON");
    v["olm"]["type"].as_str().expect("olm.type").to_owned()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
