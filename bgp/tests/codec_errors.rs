//! Every decoding error maps to the NOTIFICATION or RFC 7606 action it calls for.

use weft_bgp::codec::{
    AttrValue, CodecContext, DecodeError, ErrorAction, Family, HeaderSubcode, Message,
    NotificationError, OpenSubcode, UpdateSubcode,
};

const CTX: CodecContext = CodecContext::FOUR_OCTET;

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(ty);
    v.extend_from_slice(body);
    v
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code, value.len() as u8];
    v.extend_from_slice(value);
    v
}

fn origin() -> Vec<u8> {
    attr(0x40, 1, &[0])
}
fn as_path() -> Vec<u8> {
    attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9])
}
fn next_hop() -> Vec<u8> {
    attr(0x40, 3, &[192, 0, 2, 1])
}

fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let a: Vec<u8> = attrs.concat();
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(a.len() as u16).to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(nlri);
    frame(2, &b)
}

const NLRI: &[u8] = &[16, 10, 1]; // 10.1.0.0/16

fn err(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes, &CTX).expect_err("must not decode")
}

fn reset(bytes: &[u8]) -> NotificationError {
    match err(bytes).action() {
        ErrorAction::SessionReset(n) => n.error,
        other => panic!("expected a session reset, got {other:?}"),
    }
}

/// Asserts treat-as-withdraw and returns (cause, withdrawn prefixes).
fn withdraw(bytes: &[u8]) -> (DecodeError, Vec<ipnet::IpNet>) {
    match err(bytes) {
        DecodeError::TreatAsWithdraw { cause, withdraw } => {
            assert!(withdraw.announced().is_empty());
            (*cause, withdraw.withdrawals())
        }
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

fn subcode(e: &DecodeError) -> UpdateSubcode {
    match e {
        DecodeError::Attribute { subcode, .. } => *subcode,
        DecodeError::MissingWellKnown { .. } => UpdateSubcode::MissingWellKnownAttribute,
        DecodeError::MalformedAttributeList { .. } => UpdateSubcode::MalformedAttributeList,
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_errors() {
    let mut bad_marker = frame(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        reset(&bad_marker),
        NotificationError::MessageHeader(HeaderSubcode::ConnectionNotSynchronized)
    );
    let mut short = frame(4, &[]);
    short[17] = 18;
    let e = err(&short);
    assert_eq!(e, DecodeError::BadLength { len: 18 });
    assert_eq!(
        e.notification().unwrap().data,
        vec![0, 18],
        "data is the bad length"
    );
    let mut long = frame(2, &[0; 4]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        reset(&long),
        NotificationError::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    assert_eq!(err(&frame(9, &[])), DecodeError::BadType { ty: 9 });
    assert_eq!(err(&frame(9, &[])).notification().unwrap().data, vec![9]);
    // Type-specific minimum and exact lengths.
    assert_eq!(err(&frame(4, &[0])), DecodeError::BadLength { len: 20 });
    assert_eq!(
        err(&frame(1, &[4, 0, 1])),
        DecodeError::BadLength { len: 22 }
    );
    assert_eq!(err(&frame(3, &[6])), DecodeError::BadLength { len: 20 });
    assert_eq!(
        reset(&frame(5, &[0, 1, 0, 1, 0])),
        NotificationError::RouteRefresh(
            weft_bgp::codec::notification::RouteRefreshSubcode::InvalidMessageLength
        )
    );
}

fn open_body(version: u8, params: &[u8]) -> Vec<u8> {
    let mut b = vec![version, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, params.len() as u8];
    b.extend_from_slice(params);
    b
}

#[test]
fn open_errors() {
    let e = err(&frame(1, &open_body(3, &[])));
    assert_eq!(
        e.notification().unwrap().error,
        NotificationError::Open(OpenSubcode::UnsupportedVersionNumber)
    );
    assert_eq!(
        e.notification().unwrap().data,
        vec![0, 4],
        "data names the version we support"
    );
    assert_eq!(
        reset(&frame(1, &open_body(4, &[1, 0]))),
        NotificationError::Open(OpenSubcode::UnsupportedOptionalParameter)
    );
    let mut b = open_body(4, &[2, 2, 65, 0]);
    b[9] = 5; // says 5 octets of parameters, has 4
    assert_eq!(
        reset(&frame(1, &b)),
        NotificationError::Open(OpenSubcode::Unspecific)
    );
    assert_eq!(
        reset(&frame(1, &open_body(4, &[2, 4, 65, 3, 0, 0]))),
        NotificationError::Open(OpenSubcode::Unspecific)
    );
    assert!(Message::decode(&frame(1, &open_body(4, &[])), &CTX).is_ok());
}

#[test]
fn update_length_and_nlri_errors_reset_the_session() {
    let mut b = update(&[], &[origin(), as_path(), next_hop()], NLRI);
    b[19] = 0xff; // withdrawn length overruns
    assert_eq!(
        reset(&b),
        NotificationError::Update(UpdateSubcode::MalformedAttributeList)
    );
    let mut b = update(&[], &[origin()], &[]);
    b[22] = 0xff; // total attribute length overruns
    assert_eq!(
        reset(&b),
        NotificationError::Update(UpdateSubcode::MalformedAttributeList)
    );
    assert_eq!(
        reset(&update(
            &[],
            &[origin(), as_path(), next_hop()],
            &[33, 1, 2, 3, 4, 5]
        )),
        NotificationError::Update(UpdateSubcode::InvalidNetworkField)
    );
    assert_eq!(
        reset(&update(
            &[],
            &[origin(), as_path(), next_hop()],
            &[24, 10, 1]
        )),
        NotificationError::Update(UpdateSubcode::InvalidNetworkField)
    );
    assert_eq!(
        reset(&update(&[33, 0, 0, 0, 0, 0], &[], &[])),
        NotificationError::Update(UpdateSubcode::InvalidNetworkField)
    );
}

#[test]
fn malformed_mandatory_attributes_are_treat_as_withdraw() {
    let (cause, wd) = withdraw(&update(
        &[],
        &[attr(0x40, 1, &[3]), as_path(), next_hop()],
        NLRI,
    ));
    assert_eq!(subcode(&cause), UpdateSubcode::InvalidOriginAttribute);
    assert_eq!(wd, vec!["10.1.0.0/16".parse().unwrap()]);
    let (cause, _) = withdraw(&update(
        &[],
        &[attr(0xc0, 1, &[0]), as_path(), next_hop()],
        NLRI,
    ));
    assert_eq!(subcode(&cause), UpdateSubcode::AttributeFlagsError);
    let (cause, _) = withdraw(&update(
        &[],
        &[origin(), as_path(), attr(0x40, 3, &[1, 2, 3, 4, 5])],
        NLRI,
    ));
    assert_eq!(subcode(&cause), UpdateSubcode::AttributeLengthError);
    let (cause, _) = withdraw(&update(
        &[],
        &[origin(), as_path(), attr(0x40, 3, &[0, 0, 0, 0])],
        NLRI,
    ));
    assert_eq!(subcode(&cause), UpdateSubcode::InvalidNextHopAttribute);
    let (cause, _) = withdraw(&update(
        &[],
        &[origin(), attr(0x40, 2, &[2, 0]), next_hop()],
        NLRI,
    ));
    assert_eq!(
        subcode(&cause),
        UpdateSubcode::MalformedAsPath,
        "zero-length segment"
    );
    let (cause, _) = withdraw(&update(
        &[],
        &[origin(), attr(0x40, 2, &[7, 1, 0, 0, 0, 1]), next_hop()],
        NLRI,
    ));
    assert_eq!(
        subcode(&cause),
        UpdateSubcode::MalformedAsPath,
        "bad segment type"
    );
    let (cause, _) = withdraw(&update(
        &[],
        &[origin(), as_path(), next_hop(), attr(0xc0, 8, &[1, 2, 3])],
        NLRI,
    ));
    assert_eq!(
        subcode(&cause),
        UpdateSubcode::AttributeLengthError,
        "COMMUNITIES not a multiple of 4"
    );
    // A treat-as-withdraw notification is never sent.
    assert_eq!(
        cause.notification().map(|n| n.error),
        Some(NotificationError::Update(
            UpdateSubcode::AttributeLengthError
        ))
    );
}

#[test]
fn missing_well_known_attributes() {
    let (cause, _) = withdraw(&update(&[], &[origin(), as_path()], NLRI));
    assert_eq!(cause, DecodeError::MissingWellKnown { code: 3 });
    let (cause, _) = withdraw(&update(&[], &[as_path(), next_hop()], NLRI));
    assert_eq!(cause, DecodeError::MissingWellKnown { code: 1 });
    // No reachable NLRI: nothing is required.
    assert!(Message::decode(&update(&[16, 10, 2], &[], &[]), &CTX).is_ok());
}

#[test]
fn discardable_attributes_and_duplicates() {
    let m = Message::decode(
        &update(
            &[],
            &[
                origin(),
                as_path(),
                next_hop(),
                attr(0xc0, 7, &[1, 2, 3]),
                attr(0x80, 4, &[0, 0, 0, 5]),
                attr(0x80, 4, &[0, 0, 0, 9]),
            ],
            NLRI,
        ),
        &CTX,
    )
    .expect("attribute discard keeps the UPDATE");
    let Message::Update(u) = m else { panic!() };
    assert!(u.attr(7).is_none(), "malformed AGGREGATOR discarded");
    assert_eq!(
        u.attr(4),
        Some(&AttrValue::Med(5)),
        "first MED kept, duplicate discarded"
    );
    assert_eq!(u.nlri.len(), 1);
}

fn mp_reach_v6(prefix: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v.push(0);
    v.extend_from_slice(prefix);
    attr(0x80, 14, &v)
}

#[test]
fn multiprotocol_errors() {
    let ok = update(
        &[],
        &[
            origin(),
            as_path(),
            mp_reach_v6(&[48, 0xfd, 0, 0, 0x20, 0, 0]),
        ],
        &[],
    );
    let Message::Update(u) = Message::decode(&ok, &CTX).unwrap() else {
        panic!()
    };
    assert_eq!(u.announced(), vec!["fd00:20::/48".parse().unwrap()]);
    let dup = update(
        &[],
        &[origin(), as_path(), mp_reach_v6(&[]), mp_reach_v6(&[])],
        &[],
    );
    assert_eq!(
        reset(&dup),
        NotificationError::Update(UpdateSubcode::MalformedAttributeList)
    );
    let bad_nh = update(
        &[],
        &[
            origin(),
            as_path(),
            attr(0x80, 14, &[0, 2, 1, 4, 1, 2, 3, 4, 0]),
        ],
        &[],
    );
    assert_eq!(
        reset(&bad_nh),
        NotificationError::Update(UpdateSubcode::OptionalAttributeError)
    );
    let long_prefix = update(&[], &[origin(), as_path(), mp_reach_v6(&[129, 0])], &[]);
    assert_eq!(
        reset(&long_prefix),
        NotificationError::Update(UpdateSubcode::InvalidNetworkField)
    );
    // Bad COMMUNITIES next to a good MP_REACH: the IPv6 prefix becomes an MP_UNREACH withdrawal.
    let mixed = update(
        &[],
        &[
            origin(),
            as_path(),
            attr(0xc0, 8, &[1]),
            mp_reach_v6(&[48, 0xfd, 0, 0, 0x20, 0, 0]),
        ],
        NLRI,
    );
    let (_, wd) = withdraw(&[mixed, vec![]].concat()).clone();
    assert!(wd.contains(&"fd00:20::/48".parse().unwrap()));
    assert!(wd.contains(&"10.1.0.0/16".parse().unwrap()));
    // End-of-RIB for IPv6.
    let eor = update(&[], &[attr(0x80, 15, &[0, 2, 1])], &[]);
    let Message::Update(u) = Message::decode(&eor, &CTX).unwrap() else {
        panic!()
    };
    assert_eq!(u.as_end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn unknown_attributes() {
    assert_eq!(
        reset(&update(
            &[],
            &[origin(), as_path(), next_hop(), attr(0x40, 40, &[1])],
            NLRI
        )),
        NotificationError::Update(UpdateSubcode::UnrecognizedWellKnownAttribute)
    );
    let Message::Update(u) = Message::decode(
        &update(
            &[],
            &[origin(), as_path(), next_hop(), attr(0xe0, 40, &[1, 2])],
            NLRI,
        ),
        &CTX,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attributes[3].flags, 0xe0,
        "optional transitive kept with its flags"
    );
    assert_eq!(
        u.attr(40),
        Some(&AttrValue::Unknown {
            code: 40,
            data: vec![1, 2]
        })
    );
}

#[test]
fn attribute_overrunning_the_list_is_treat_as_withdraw() {
    // The NEXT_HOP claims 9 octets but only 4 remain inside the attribute list.
    let mut nh = next_hop();
    nh[2] = 9;
    let (cause, wd) = withdraw(&update(&[], &[origin(), as_path(), nh], NLRI));
    assert_eq!(subcode(&cause), UpdateSubcode::MalformedAttributeList);
    assert_eq!(wd.len(), 1);
}

#[test]
fn frame_splitter_reassembles_and_poisons() {
    use weft_bgp::codec::FrameSplitter;
    let ka = frame(4, &[]);
    let up = update(&[], &[origin(), as_path(), next_hop()], NLRI);
    let stream = [ka.clone(), up.clone(), ka.clone()].concat();
    let mut s = FrameSplitter::new();
    let mut got = Vec::new();
    for chunk in stream.chunks(5) {
        s.feed(chunk);
        while let Some(f) = s.next_frame() {
            got.push(f.unwrap().to_vec());
        }
    }
    assert_eq!(got, vec![ka.clone(), up, ka]);
    assert_eq!(s.buffered(), 0);
    let mut bad = frame(4, &[]);
    bad[0] = 0;
    s.feed(&bad);
    assert_eq!(s.next_frame().unwrap().unwrap_err(), DecodeError::BadMarker);
    s.feed(&frame(4, &[]));
    assert!(
        s.next_frame().unwrap().is_err(),
        "a broken stream stays broken"
    );
}
