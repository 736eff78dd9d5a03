//! RFC 7541 Appendix C, every example: decoded header lists and the dynamic
//! table after each block (entries, sizes, evictions).

use protocols::http2::hpack::decoder::integer;
use protocols::http2::hpack::table::Lookup;
use protocols::http2::hpack::{Decoder, Encoder, HpackError};
use protocols::record::{FIELD_NEVER_INDEXED, Headers};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fields(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v, _)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn table(d: &Decoder) -> Vec<(String, String)> {
    (0..d.table().len() as u64)
        .map(|i| match d.table().get(62 + i) {
            Lookup::Dynamic(e) => (
                String::from_utf8(e.name().to_vec()).unwrap(),
                String::from_utf8(e.value().to_vec()).unwrap(),
            ),
            other => panic!("index {}: {other:?}", 62 + i),
        })
        .collect()
}

struct Step {
    wire: &'static str,
    list: &'static [(&'static str, &'static str)],
    table: &'static [(&'static str, &'static str)],
    size: u64,
}

fn run(name: &str, table_size: u64, steps: &[Step]) {
    let mut d = Decoder::new(1 << 16);
    if table_size != 4096 {
        // The examples set SETTINGS_HEADER_TABLE_SIZE = 256 out of band.
        d.settings_table_size(table_size);
        let mut h = Headers::new();
        let mut w = Vec::new();
        protocols::http2::hpack::encoder::integer(0x20, 5, table_size, &mut w);
        d.decode_block(&w, &mut h).unwrap();
    }
    for (i, s) in steps.iter().enumerate() {
        let mut h = Headers::new();
        d.decode_block(&hex(s.wire), &mut h)
            .unwrap_or_else(|e| panic!("{name} step {i}: {e}"));
        let want: Vec<_> = s
            .list
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(fields(&h), want, "{name} step {i}: header list");
        let want: Vec<_> = s
            .table
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(table(&d), want, "{name} step {i}: dynamic table");
        assert_eq!(d.table().size(), s.size, "{name} step {i}: table size");
        assert!(d.table().fully_known());
    }
}

#[test]
fn c1_integers() {
    assert_eq!(integer(&hex("0a"), 5), Ok(Some((10, 1))));
    assert_eq!(integer(&hex("1f9a0a"), 5), Ok(Some((1337, 3))));
    assert_eq!(integer(&hex("2a"), 8), Ok(Some((42, 1))));
    for (v, prefix) in [(10u64, 5u8), (1337, 5), (42, 8), (u32::MAX as u64, 4)] {
        let mut w = Vec::new();
        if prefix < 8 {
            protocols::http2::hpack::encoder::integer(0, prefix, v, &mut w);
            assert_eq!(integer(&w, prefix), Ok(Some((v, w.len()))));
        }
    }
}

#[test]
fn c2_field_representations() {
    // C.2.1 literal with indexing
    let mut d = Decoder::new(1 << 16);
    let mut h = Headers::new();
    d.decode_block(
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        &mut h,
    )
    .unwrap();
    assert_eq!(fields(&h), [("custom-key".into(), "custom-header".into())]);
    assert_eq!(table(&d), [("custom-key".into(), "custom-header".into())]);
    assert_eq!(d.table().size(), 55);
    // C.2.2 literal without indexing
    let mut d = Decoder::new(1 << 16);
    let mut h = Headers::new();
    d.decode_block(&hex("040c 2f73 616d 706c 652f 7061 7468"), &mut h)
        .unwrap();
    assert_eq!(fields(&h), [(":path".into(), "/sample/path".into())]);
    assert_eq!(d.table().len(), 0);
    // C.2.3 literal never indexed
    let mut d = Decoder::new(1 << 16);
    let mut h = Headers::new();
    d.decode_block(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut h)
        .unwrap();
    assert_eq!(fields(&h), [("password".into(), "secret".into())]);
    assert_eq!(h.iter().next().unwrap().2, FIELD_NEVER_INDEXED);
    assert_eq!(d.table().len(), 0);
    // C.2.4 indexed
    let mut d = Decoder::new(1 << 16);
    let mut h = Headers::new();
    d.decode_block(&hex("82"), &mut h).unwrap();
    assert_eq!(fields(&h), [(":method".into(), "GET".into())]);
    assert_eq!(d.table().len(), 0);
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_T2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    run(
        "C.3",
        4096,
        &[
            Step {
                wire: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                list: REQ1,
                table: REQ_T1,
                size: 57,
            },
            Step {
                wire: "8286 84be 5808 6e6f 2d63 6163 6865",
                list: REQ2,
                table: REQ_T2,
                size: 110,
            },
            Step {
                wire: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                list: REQ3,
                table: REQ_T3,
                size: 164,
            },
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    run(
        "C.4",
        4096,
        &[
            Step {
                wire: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                list: REQ1,
                table: REQ_T1,
                size: 57,
            },
            Step {
                wire: "8286 84be 5886 a8eb 1064 9cbf",
                list: REQ2,
                table: REQ_T2,
                size: 110,
            },
            Step {
                wire: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                list: REQ3,
                table: REQ_T3,
                size: 164,
            },
        ],
    );
}

const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
];
const RESP_T1: &[(&str, &str)] = &[
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESP_T2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
];
const RESP_T3: &[(&str, &str)] = &[
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
    ("content-encoding", "gzip"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
];

#[test]
fn c5_responses_without_huffman() {
    run(
        "C.5",
        256,
        &[
            Step {
                wire: "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                       2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                       6c65 2e63 6f6d",
                list: RESP1,
                table: RESP_T1,
                size: 222,
            },
            Step {
                wire: "4803 3330 37c1 c0bf",
                list: RESP2,
                table: RESP_T2,
                size: 222,
            },
            Step {
                wire: "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                       54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                       5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                       3d31",
                list: RESP3,
                table: RESP_T3,
                size: 215,
            },
        ],
    );
}

#[test]
fn c6_responses_with_huffman() {
    run(
        "C.6",
        256,
        &[
            Step {
                wire: "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                       2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                list: RESP1,
                table: RESP_T1,
                size: 222,
            },
            Step {
                wire: "4883 640e ffc1 c0bf",
                list: RESP2,
                table: RESP_T2,
                size: 222,
            },
            Step {
                wire: "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                       77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                       9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                list: RESP3,
                table: RESP_T3,
                size: 215,
            },
        ],
    );
}

/// Our test encoder against our decoder over many header lists, with table
/// resizes: lists and tables agree.
#[test]
fn encoder_round_trip_with_resizes() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(1 << 20);
    dec.settings_table_size(65536);
    for round in 0..300u32 {
        if round % 50 == 10 {
            enc.set_max_size([0, 100, 4096, 65536, 300][(round / 50) as usize % 5]);
        }
        enc.huffman = round % 3 != 0;
        let v = format!("value-{}", round % 17);
        let long = "z".repeat((round as usize * 7) % 500);
        let list: Vec<(&[u8], &[u8], bool)> = vec![
            (b":method", b"POST", false),
            (b":path", v.as_bytes(), false),
            (b"x-long", long.as_bytes(), false),
            (b"authorization", b"secret", round % 5 == 0),
            (b"x-round", v.as_bytes(), false),
        ];
        let mut wire = Vec::new();
        enc.encode(&list, &mut wire);
        let mut h = Headers::new();
        dec.decode_block(&wire, &mut h).unwrap();
        let got: Vec<_> = h.iter().map(|(n, v, _)| (n.to_vec(), v.to_vec())).collect();
        let want: Vec<_> = list
            .iter()
            .map(|(n, v, _)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got, want, "round {round}");
        assert_eq!(dec.table().len(), enc.len(), "round {round}");
    }
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let cases: &[(&str, HpackError)] = &[
        ("80", HpackError::InvalidIndex(0)),
        ("be", HpackError::InvalidIndex(62)),
        ("ff ff ff ff ff 0f", HpackError::IntegerOverflow),
        ("40 85 ff ff ff ff ff 00", HpackError::Huffman),
        ("40 7f ff ff ff 0f", HpackError::StringTooLong(33_554_558)),
        ("82 3f e1 1f", HpackError::MisplacedSizeUpdate),
        ("3f e2 1f", HpackError::SizeUpdateTooLarge(4097)),
        ("40 05 61 62", HpackError::Truncated),
    ];
    for (wire, err) in cases {
        let mut d = Decoder::new(1 << 16);
        assert_eq!(
            d.decode_block(&hex(wire), &mut Headers::new()),
            Err(*err),
            "{wire}"
        );
    }
}
