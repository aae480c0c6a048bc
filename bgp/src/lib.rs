//! weft's BGP-4 speaker: message codec, sans-IO session state machine, RIB and policy, route programming.
