//! XML helpers over `minidom` (the xmpp-rs DOM): a small builder for the
//! stanzas we send, and reading helpers that treat what arrives as untrusted.

use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// Namespaces the connector speaks.
pub mod ns {
    pub const CLIENT: &str = "jabber:client";
    pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
    pub const STREAMS: &str = "http://etherx.jabber.org/streams";
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    pub const MUC: &str = "http://jabber.org/protocol/muc";
    pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
    pub const NICK: &str = "http://jabber.org/protocol/nick";
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    pub const PING: &str = "urn:xmpp:ping";
    pub const FOCUS: &str = "http://jitsi.org/protocol/focus";
    pub const JITMEET: &str = "http://jitsi.org/jitmeet";
    pub const JINGLE: &str = "urn:xmpp:jingle:1";
    pub const JINGLE_RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
    pub const JINGLE_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
    pub const JINGLE_DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
    pub const JINGLE_SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
    pub const JINGLE_GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
    pub const JINGLE_RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
    pub const JINGLE_HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
    pub const JITSI_E2EE_FEATURE: &str = "https://jitsi.org/meet/e2ee";
}

/// An element being built.
pub struct X(Element);

impl X {
    pub fn new(name: &str, ns: &str) -> Self {
        Self(Element::bare(name, ns))
    }

    /// Sets an attribute (names are our own literals; an invalid one is a
    /// bug caught by the tests, skipped in release builds).
    pub fn a(mut self, name: &str, value: impl Into<String>) -> Self {
        match NcName::try_from(name) {
            Ok(name) => self.0.set_attr(Namespace::NONE, name, value.into()),
            Err(_) => debug_assert!(false, "invalid attribute name {name}"),
        }
        self
    }

    /// Sets an attribute when there is a value.
    pub fn a_opt(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.a(name, v),
            None => self,
        }
    }

    pub fn child(mut self, child: X) -> Self {
        self.0.append_child(child.0);
        self
    }

    pub fn children(mut self, children: impl IntoIterator<Item = X>) -> Self {
        for c in children {
            self.0.append_child(c.0);
        }
        self
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.append_text(text.into());
        self
    }

    pub fn build(self) -> Element {
        self.0
    }

    /// The element as one WebSocket message.
    pub fn to_xml(&self) -> String {
        String::from(&self.0)
    }
}

/// An attribute's value, or "".
pub fn attr<'a>(el: &'a Element, name: &'a str) -> &'a str {
    el.attr(name).unwrap_or("")
}

/// Children with this name in this namespace.
pub fn kids<'a>(el: &'a Element, name: &'a str, ns: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
    el.children().filter(move |c| c.is(name, ns))
}

/// The text of the first child `name` in `ns`.
pub fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns).map(Element::text)
}
