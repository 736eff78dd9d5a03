//! How does the `hpack` crate fare on RFC 7541 Appendix C and hostile input?
use std::panic;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

type List = Vec<(&'static str, &'static str)>;

fn case(name: &str, table: Option<usize>, steps: &[(&str, List)]) -> bool {
    let mut d = hpack::Decoder::new();
    if let Some(t) = table {
        d.set_max_table_size(t);
    }
    let mut ok = true;
    for (i, (wire, want)) in steps.iter().enumerate() {
        let got = d.decode(&hex(wire));
        let good = match &got {
            Ok(list) => {
                let want: Vec<(Vec<u8>, Vec<u8>)> =
                    want.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
                *list == want
            }
            Err(_) => false,
        };
        if !good {
            println!("  {name} step {i}: FAIL {:?}", got.map(|l| l.len()));
            ok = false;
        }
    }
    println!("{name}: {}", if ok { "pass" } else { "FAIL" });
    ok
}

fn main() {
    let req1 = vec![(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    let mut req2 = req1.clone();
    req2.push(("cache-control", "no-cache"));
    let req3 = vec![(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];
    let resp1 = vec![(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")];
    let mut resp2 = resp1.clone();
    resp2[0] = (":status", "307");
    let resp3 = vec![(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"), ("content-encoding", "gzip"), ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")];
    let mut pass = 0;
    let mut total = 0;
    let mut check = |b: bool| {
        total += 1;
        if b {
            pass += 1
        }
    };
    check(case("C.2.1", None, &[("400a637573746f6d2d6b65790d637573746f6d2d686561646572", vec![("custom-key", "custom-header")])]));
    check(case("C.2.2", None, &[("040c2f73616d706c652f70617468", vec![(":path", "/sample/path")])]));
    check(case("C.2.3", None, &[("100870617373776f726406736563726574", vec![("password", "secret")])]));
    check(case("C.2.4", None, &[("82", vec![(":method", "GET")])]));
    check(case("C.3", None, &[
        ("828684410f7777772e6578616d706c652e636f6d", req1.clone()),
        ("828684be58086e6f2d6361636865", req2.clone()),
        ("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565", req3.clone()),
    ]));
    check(case("C.4", None, &[
        ("828684418cf1e3c2e5f23a6ba0ab90f4ff", req1.clone()),
        ("828684be5886a8eb10649cbf", req2.clone()),
        ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", req3.clone()),
    ]));
    check(case("C.5", Some(256), &[
        ("4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d", resp1.clone()),
        ("4803333037c1c0bf", resp2.clone()),
        ("88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31", resp3.clone()),
    ]));
    check(case("C.6", Some(256), &[
        ("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3", resp1),
        ("4883640effc1c0bf", resp2),
        ("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007", resp3),
    ]));
    println!("Appendix C: {pass}/{total} cases pass");

    // Hand-picked hostile inputs.
    let _ = panic::catch_unwind(|| hpack::Decoder::new().decode(&hex("3fffffffff0f")));
    panic::set_hook(Box::new(|_| {}));
    let hostile = [
        ("integer overflow", "ff ff ff ff ff ff ff ff ff ff 0f"),
        ("index 0", "80"),
        ("index past table", "ff 80 01"),
        ("string past end", "40 7f ff ff ff 0f"),
        ("size update to huge", "3f ff ff ff ff 0f"),
        ("EOS in Huffman", "40 84 ff ff ff ff 81 61"),
        ("truncated literal", "40 05 61 62"),
    ];
    for (what, wire) in hostile {
        let r = panic::catch_unwind(|| hpack::Decoder::new().decode(&hex(wire)).is_ok());
        println!("hostile {what:<22}: {}", match r {
            Ok(true) => "accepted",
            Ok(false) => "error",
            Err(_) => "PANIC",
        });
    }
    // Random input: count panics (xorshift, fixed seed).
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut panics = 0;
    let runs = 200_000;
    for _ in 0..runs {
        let mut buf = Vec::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 24) as usize;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        if panic::catch_unwind(|| {
            let _ = hpack::Decoder::new().decode(&buf);
        })
        .is_err()
        {
            panics += 1;
        }
    }
    println!("random: {panics} panics in {runs} inputs of 0..24 octets");
}
