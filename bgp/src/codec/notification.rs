//! NOTIFICATION messages (RFC 4271 §4.5) with error codes and subcodes as enums.

/// A NOTIFICATION: the error that closes a session, and its diagnostic data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code and subcode.
    pub error: NotificationError,
    /// Diagnostic data whose meaning depends on the error.
    pub data: Vec<u8>,
}

impl Notification {
    /// A notification with diagnostic data.
    pub fn new(error: NotificationError, data: Vec<u8>) -> Self {
        Notification { error, data }
    }

    /// A notification without data.
    pub fn bare(error: NotificationError) -> Self {
        Notification {
            error,
            data: Vec::new(),
        }
    }

    /// Cease with the given subcode and no data.
    pub fn cease(subcode: CeaseSubcode) -> Self {
        Self::bare(NotificationError::Cease(subcode))
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.error)?;
        if !self.data.is_empty() {
            write!(f, " (data ")?;
            for b in &self.data {
                write!(f, "{b:02x}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Defines a subcode enum with a catch-all `Unknown(u8)` so every byte round-trips.
macro_rules! subcode_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A subcode this implementation does not name.
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

subcode_enum!(
    /// Message Header Error subcodes (code 1).
    HeaderSubcode {
        /// Subcode 0: unspecific.
        Unspecific = 0,
        /// The marker was not all ones.
        ConnectionNotSynchronized = 1,
        /// Length below 19, above 4096 or below the type's minimum.
        BadMessageLength = 2,
        /// Unknown message type.
        BadMessageType = 3,
    }
);

subcode_enum!(
    /// OPEN Message Error subcodes (code 2).
    OpenSubcode {
        /// Subcode 0: unspecific.
        Unspecific = 0,
        /// Version is not 4.
        UnsupportedVersionNumber = 1,
        /// The peer's AS is not the configured one.
        BadPeerAs = 2,
        /// The BGP identifier is zero or equal to ours.
        BadBgpIdentifier = 3,
        /// An optional parameter we do not understand.
        UnsupportedOptionalParameter = 4,
        /// Hold time 1 or 2.
        UnacceptableHoldTime = 6,
        /// A capability we require is missing (RFC 5492).
        UnsupportedCapability = 7,
    }
);

subcode_enum!(
    /// UPDATE Message Error subcodes (code 3).
    UpdateSubcode {
        /// Subcode 0: unspecific.
        Unspecific = 0,
        /// Lengths do not add up, or MP attributes are duplicated.
        MalformedAttributeList = 1,
        /// A well-known attribute with an unknown type code.
        UnrecognizedWellKnownAttribute = 2,
        /// ORIGIN, AS_PATH or NEXT_HOP absent.
        MissingWellKnownAttribute = 3,
        /// Flags conflict with the attribute's type.
        AttributeFlagsError = 4,
        /// Length wrong for the attribute's type.
        AttributeLengthError = 5,
        /// ORIGIN value not 0, 1 or 2.
        InvalidOriginAttribute = 6,
        /// NEXT_HOP syntactically or semantically wrong.
        InvalidNextHopAttribute = 8,
        /// An optional attribute with a bad value.
        OptionalAttributeError = 9,
        /// An NLRI prefix that does not parse.
        InvalidNetworkField = 10,
        /// AS_PATH segments that do not parse.
        MalformedAsPath = 11,
    }
);

subcode_enum!(
    /// Finite State Machine Error subcodes (code 5, RFC 6608).
    FsmSubcode {
        /// Subcode 0: unspecified.
        Unspecified = 0,
        /// A message that OpenSent does not expect.
        UnexpectedMessageInOpenSent = 1,
        /// A message that OpenConfirm does not expect.
        UnexpectedMessageInOpenConfirm = 2,
        /// A message that Established does not expect.
        UnexpectedMessageInEstablished = 3,
    }
);

subcode_enum!(
    /// Cease subcodes (code 6, RFC 4486).
    CeaseSubcode {
        /// Subcode 0: unspecific.
        Unspecific = 0,
        /// Maximum Number of Prefixes Reached.
        MaximumPrefixesReached = 1,
        /// Administrative Shutdown.
        AdministrativeShutdown = 2,
        /// Peer De-configured.
        PeerDeconfigured = 3,
        /// Administrative Reset.
        AdministrativeReset = 4,
        /// Connection Rejected.
        ConnectionRejected = 5,
        /// Other Configuration Change.
        OtherConfigurationChange = 6,
        /// Connection Collision Resolution.
        ConnectionCollisionResolution = 7,
        /// Out of Resources.
        OutOfResources = 8,
        /// Hard Reset (RFC 8538).
        HardReset = 9,
    }
);

subcode_enum!(
    /// ROUTE-REFRESH Message Error subcodes (code 7, RFC 7313).
    RouteRefreshSubcode {
        /// Subcode 0: reserved.
        Reserved = 0,
        /// Length is not 23.
        InvalidMessageLength = 1,
    }
);

/// The (code, subcode) pair of a NOTIFICATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationError {
    /// Code 1.
    MessageHeader(HeaderSubcode),
    /// Code 2.
    Open(OpenSubcode),
    /// Code 3.
    Update(UpdateSubcode),
    /// Code 4; the subcode byte is kept as sent.
    HoldTimerExpired(u8),
    /// Code 5.
    Fsm(FsmSubcode),
    /// Code 6.
    Cease(CeaseSubcode),
    /// Code 7.
    RouteRefresh(RouteRefreshSubcode),
    /// Any other code.
    Unknown {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

impl NotificationError {
    /// Builds from wire bytes.
    pub fn from_bytes(code: u8, subcode: u8) -> Self {
        match code {
            1 => Self::MessageHeader(subcode.into()),
            2 => Self::Open(subcode.into()),
            3 => Self::Update(subcode.into()),
            4 => Self::HoldTimerExpired(subcode),
            5 => Self::Fsm(subcode.into()),
            6 => Self::Cease(subcode.into()),
            7 => Self::RouteRefresh(subcode.into()),
            code => Self::Unknown { code, subcode },
        }
    }

    /// The wire (code, subcode).
    pub fn to_bytes(self) -> (u8, u8) {
        match self {
            Self::MessageHeader(s) => (1, s.into()),
            Self::Open(s) => (2, s.into()),
            Self::Update(s) => (3, s.into()),
            Self::HoldTimerExpired(s) => (4, s),
            Self::Fsm(s) => (5, s.into()),
            Self::Cease(s) => (6, s.into()),
            Self::RouteRefresh(s) => (7, s.into()),
            Self::Unknown { code, subcode } => (code, subcode),
        }
    }
}
