//! A Jitsi deployment's `config.js`: where its XMPP is.
//!
//! Jitsi's own apps load `https://<host>/config.js` before joining and take
//! from it the XMPP domain (`hosts.domain`), the multi-user chat service
//! (`hosts.muc`), the focus (`hosts.focus`) and the WebSocket
//! (`websocket`). The file is JavaScript; the apps run it. We do not run
//! it: [`parse`] reads those four settings where they are written as plain
//! string literals (how stock deployments and the docker images write
//! them) and leaves the rest to the defaults a stock deployment uses. A
//! value that is an expression (`'conference.' + subdomain + …`) is not
//! read, and the caller says so in its log.
//!
//! Untrusted input (it comes from the meeting's server): bounded, never
//! panics, and only values that look like what they are accepted.

/// What a `config.js` says about where the deployment's XMPP is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentConfig {
    pub domain: Option<String>,
    pub muc: Option<String>,
    pub focus: Option<String>,
    /// `wss://…` only (the page came over TLS; so must the signalling).
    pub websocket: Option<String>,
}

/// Longest `config.js` read (stock ones are about 60 kB).
pub const MAX_CONFIG_JS: usize = 512 * 1024;

/// Reads the four settings from a `config.js` text.
pub fn parse(text: &str) -> DeploymentConfig {
    let text = &text[..floor_char_boundary(text, MAX_CONFIG_JS)];
    let tokens = tokenize(text);
    let mut config = DeploymentConfig::default();
    // Walk the tokens keeping the path of object keys we are inside.
    let mut path: Vec<Option<String>> = Vec::new();
    let mut pending_key: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => {
                path.push(pending_key.take());
            }
            Token::Punct('}') => {
                path.pop();
                pending_key = None;
            }
            Token::Ident(name) | Token::Str(name) if matches!(tokens.get(i + 1), Some(Token::Punct(':'))) => {
                pending_key = Some(name.clone());
                // A value that is exactly one string literal, ended by `,`, `}` or the end.
                if let (Some(Token::Str(value)), end) = (tokens.get(i + 2), tokens.get(i + 3)) {
                    let ends = matches!(end, None | Some(Token::Punct(',' | '}')));
                    let inside_hosts = path.last().is_some_and(|k| k.as_deref() == Some("hosts"));
                    let top = path.iter().filter(|k| k.is_some()).count() == 0;
                    if ends {
                        match name.as_str() {
                            "domain" if inside_hosts => config.domain = valid_domain(value),
                            "muc" if inside_hosts => config.muc = valid_domain(value),
                            "focus" if inside_hosts => config.focus = valid_domain(value),
                            "websocket" if top => config.websocket = valid_websocket(value),
                            _ => {}
                        }
                    }
                    pending_key = None;
                    i += 3;
                    continue;
                }
                i += 2;
                continue;
            }
            _ => pending_key = None,
        }
        i += 1;
    }
    config
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
    Other,
}

/// JavaScript, coarsely: identifiers, string literals (one with an escape
/// or a template substitution is not a plain value), punctuation; comments
/// and whitespace dropped.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                let mut plain = true;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' {
                        // Escapes are not interpreted: such a value is not read.
                        plain = false;
                        i += 1;
                    }
                    if quote == '`' && chars[i..].starts_with(&['$', '{']) {
                        plain = false;
                    }
                    if let Some(&ch) = chars.get(i) {
                        s.push(ch);
                    }
                    i += 1;
                }
                i += 1;
                out.push(if plain { Token::Str(s) } else { Token::Other });
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_whitespace() => i += 1,
            '{' | '}' | ':' | ',' => {
                out.push(Token::Punct(c));
                i += 1;
            }
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

fn valid_domain(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && !v.starts_with('.')
        && !v.ends_with('.')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    ok.then(|| v.to_ascii_lowercase())
}

fn valid_websocket(v: &str) -> Option<String> {
    let rest = v.strip_prefix("wss://")?;
    let ok = v.len() <= 512 && !rest.is_empty() && rest.chars().all(|c| c.is_ascii_graphic()) && !rest.contains('@');
    ok.then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written for this test in the shape of a stock deployment's file.
    const STOCK: &str = r#"
/* eslint-disable comma-dangle */
var subdir = '<!--# echo var="subdir" default="" -->';
var config = {
    // Connection
    hosts: {
        // XMPP domain.
        domain: 'meet.example.org',
        // When using authentication, domain for guest users.
        // anonymousdomain: 'guest.example.com',
        muc: 'conference.meet.example.org',
        focus: "focus.meet.example.org",
    },
    // Websocket URL (XMPP)
    websocket: 'wss://meet.example.org/xmpp-websocket',
    bosh: '//meet.example.org/http-bind',
    p2p: { enabled: true, stunServers: [ { urls: 'stun:meet-jit-si-turnrelay.jitsi.net:443' } ] },
    e2ee: { labels: { domain: 'not this one' } },
};
"#;

    #[test]
    fn reads_the_four_settings_of_a_stock_config() {
        let c = parse(STOCK);
        assert_eq!(c.domain.as_deref(), Some("meet.example.org"));
        assert_eq!(c.muc.as_deref(), Some("conference.meet.example.org"));
        assert_eq!(c.focus.as_deref(), Some("focus.meet.example.org"));
        assert_eq!(c.websocket.as_deref(), Some("wss://meet.example.org/xmpp-websocket"));
    }

    #[test]
    fn expressions_comments_and_other_objects_are_not_read() {
        let c = parse(
            r#"var config = { hosts: { domain: 'x.org', muc: 'conference.' + subdomain + 'x.org', // focus: 'f.x.org',
               }, websocket: `wss://${location.host}/xmpp-websocket`, other: { websocket: 'wss://evil.example/' } };"#,
        );
        assert_eq!(c.domain.as_deref(), Some("x.org"));
        assert_eq!(c.muc, None, "an expression is not a value");
        assert_eq!(c.focus, None, "a commented-out line is not a value");
        assert_eq!(c.websocket, None, "a template and a nested key are not the top-level websocket");
    }

    #[test]
    fn hostile_values_are_refused_and_garbage_survived() {
        let c = parse(
            "var config = { hosts: { domain: 'evil\\nline', muc: 'a b', focus: '..' }, websocket: 'ws://plain.example/x' };",
        );
        assert_eq!(c, DeploymentConfig::default());
        let c = parse("var config = { websocket: 'wss://user@host/x' };");
        assert_eq!(c.websocket, None, "no credentials in the WebSocket URL");
        for garbage in
            ["", "{", "}}}}", "'unterminated", "/* open", "hosts: { domain: ", &"{".repeat(10_000), "\u{1F600}"]
        {
            let _ = parse(garbage);
        }
        let big = format!("var config = {{ hosts: {{ domain: 'a.org' }} }};{}", " ".repeat(MAX_CONFIG_JS));
        assert_eq!(parse(&big).domain.as_deref(), Some("a.org"));
    }
}
