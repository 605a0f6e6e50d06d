//! Mirror sessions: their committed configuration and running sequence numbers.

use shadownet_hw::{NUM_SESSIONS, layout::session::MirrorSession};

/// Every mirror session.
pub struct Sessions {
    config: [MirrorSession; NUM_SESSIONS],
    next_seq: [u32; NUM_SESSIONS],
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            config: [MirrorSession::DISABLED; NUM_SESSIONS],
            next_seq: [0; NUM_SESSIONS],
        }
    }
}

impl Sessions {
    /// A session's configuration.
    #[inline]
    pub fn get(&self, session: u16) -> &MirrorSession {
        &self.config[session as usize]
    }

    /// Commits a configuration; a session that was disabled starts its sequence at 0.
    pub fn commit(&mut self, session: u16, config: MirrorSession) {
        let i = session as usize;
        if !self.config[i].enabled {
            self.next_seq[i] = 0;
        }
        self.config[i] = config;
    }

    /// Disables a session and resets its sequence.
    pub fn disable(&mut self, session: u16) {
        let i = session as usize;
        self.config[i].enabled = false;
        self.next_seq[i] = 0;
    }

    /// Takes the next sequence number of a session (copies are numbered when made, so gaps
    /// downstream show every copy lost to the policer or a queue).
    #[inline]
    pub fn next_sequence(&mut self, session: u16) -> u32 {
        let s = &mut self.next_seq[session as usize];
        let v = *s;
        *s = s.wrapping_add(1);
        v
    }
}
