-- Stand-in for jicofo (Jitsi's focus) in the end-to-end tests: answers
-- lib-jitsi-meet's <conference xmlns='http://jitsi.org/protocol/focus'/> request
-- with ready='true' and does nothing else (no bridge, no Jingle from the focus:
-- 1:1 media runs P2P). Loaded by tests/e2e/lib/prosody.mjs as the component
-- focus.meet.jitsi.
-- Source: ../shared/jitsi/prosody/mod_fake_focus.lua (the project's Jitsi
-- material, written for the probe that ran lib-jitsi-meet with E2EE here).
local st = require "util.stanza";
module:hook("iq-set/host/http://jitsi.org/protocol/focus:conference", function(event)
    local origin, stanza = event.origin, event.stanza;
    local conf = stanza.tags[1];
    module:log("info", "conference request for room %s from %s (machine-uid=%s)",
        tostring(conf.attr.room), tostring(stanza.attr.from), tostring(conf.attr["machine-uid"]));
    origin.send(st.reply(stanza):tag("conference", {
        xmlns = "http://jitsi.org/protocol/focus";
        room = conf.attr.room;
        ready = "true";
        focusjid = "focus@auth.meet.jitsi";
    }):tag("property", { name = "authentication", value = "false" }):up());
    return true;
end);
