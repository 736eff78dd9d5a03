//! Tests on real Go binaries (built by `testbins`).

use std::collections::HashMap;

use super::testbins::{self, Program, Variant};
use super::*;

/// Print the fallback table for the binaries built here, as Rust, from
/// their DWARF (`cargo xtask go-offsets` runs this).
#[test]
#[ignore = "prints the offsets table; run by `cargo xtask go-offsets`"]
fn print_offsets_table() {
    let mut merged = HashMap::new();
    let mut go = String::new();
    let mut modules: HashMap<&'static str, String> = HashMap::new();
    for p in Program::ALL {
        let Some(bytes) = testbins::bytes(p, Variant::Full) else {
            return;
        };
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        let info = buildinfo::read(&elf).unwrap().unwrap();
        go = info.raw_version.clone();
        for m in [offsets::GRPC_MODULE, offsets::XNET_MODULE] {
            if let Some(v) = modversion::module_version(&elf, &info, m) {
                modules.insert(m, v.version);
            }
        }
        let names: Vec<&str> = offsets::STRUCTS.iter().map(|s| s.name).collect();
        for (k, v) in dwarf::struct_layouts(&elf, &names).unwrap() {
            merged.entry(k).or_insert(v);
        }
    }
    // GOPATH mode records no module versions: golang.org/x/net is Debian's.
    if let Some(v) = testbins::debian_module_version("golang-golang-x-net-dev") {
        modules.entry(offsets::XNET_MODULE).or_insert(v);
    }
    println!("{}", offsets::render_table(&merged, &go, &modules));
}

use plan::{Attach, Plan, PlanError, Target, Unavailable};
use probes::ProbeId;

fn target(name: &str) -> Target {
    Target {
        attach_path: name.into(),
        pid: None,
        exe: name.into(),
    }
}

fn plan_of(p: Program, v: Variant) -> Option<(Vec<u8>, Plan)> {
    let bytes = testbins::bytes(p, v)?;
    let plan = plan::plan_bytes(&bytes, target(&format!("{p:?}-{v:?}")))
        .unwrap_or_else(|e| panic!("{p:?} {v:?}: {e}"));
    Some((bytes, plan))
}

fn ready(plan: &Plan, id: ProbeId) -> &Attach {
    match &plan.probe(id).unwrap().outcome {
        Ok(a) => a,
        Err(e) => panic!(
            "{}: {id:?} unavailable: {e}\n{plan}",
            plan.target.exe.display()
        ),
    }
}

fn unavailable(plan: &Plan, id: ProbeId) -> &Unavailable {
    match &plan.probe(id).unwrap().outcome {
        Ok(a) => panic!("{id:?} unexpectedly ready: {a:?}"),
        Err(e) => e,
    }
}

/// Every program plain and stripped; a position-independent build of the
/// net/http one only (a PIE build recompiles the standard library: ~20 s a
/// program on a fresh machine).
fn variants(p: Program) -> Vec<Variant> {
    match p {
        Program::NetHttp => vec![Variant::Full, Variant::Stripped, Variant::Pie],
        _ => vec![Variant::Full, Variant::Stripped],
    }
}

const HTTP_PROBES: [ProbeId; 4] = [
    ProbeId::HttpServer,
    ProbeId::HttpClientDo,
    ProbeId::HttpClientRoundTrip,
    ProbeId::GoroutineNew,
];
const GRPC_PROBES: [ProbeId; 4] = [
    ProbeId::GrpcServerHeaders,
    ProbeId::GrpcClientHeaders,
    ProbeId::GrpcWriteHeader,
    ProbeId::GrpcClientStream,
];

#[test]
fn go_version_and_build_info() {
    for p in Program::ALL {
        for v in variants(p) {
            let Some(bytes) = testbins::bytes(p, v) else {
                return;
            };
            let elf = elf::ElfImage::parse(&bytes).unwrap();
            let info = buildinfo::read(&elf).unwrap().expect("a Go binary");
            assert!(
                info.raw_version.starts_with("go1.19."),
                "{p:?} {v:?}: {}",
                info.raw_version
            );
            let version = info.version.as_ref().unwrap();
            assert_eq!((version.major, version.minor), (1, 19));
            assert_eq!(info.source, buildinfo::VersionSource::BuildInfoInline);
            assert!(
                info.path
                    .as_deref()
                    .unwrap()
                    .ends_with(&format!("/testdata/{}", p_dir(p)))
            );
            assert_eq!(info.setting("GOARCH"), Some("amd64"));
            if v == Variant::Stripped {
                assert_eq!(info.setting("-ldflags"), Some("-s -w"));
            }
            // GOPATH mode: no module lines.
            assert!(info.main.is_none() && info.deps.is_empty());
            let ids = elf.build_ids();
            assert!(
                ids.go.as_deref().is_some_and(|id| id.contains('/')),
                "{ids:?}"
            );
        }
    }
}

fn p_dir(p: Program) -> &'static str {
    match p {
        Program::NetHttp => "nethttp",
        Program::Gin => "gin",
        Program::Grpc => "grpc",
    }
}

/// Go 1.13-1.17 wrote build info as pointers to string headers. Rewrite a
/// real Go 1.19 binary's blob that way (headers and strings placed in the
/// data segment right after it) and read it back.
#[test]
fn build_info_pointer_format() {
    let Some(mut bytes) = testbins::bytes(Program::NetHttp, Variant::Stripped) else {
        return;
    };
    let (addr, off, inline) = {
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        let addr = elf.section_address(".go.buildinfo").unwrap();
        let off = elf.file_offset(addr).unwrap() as usize;
        let info = buildinfo::read(&elf).unwrap().unwrap();
        (addr, off, info)
    };
    let modinfo = {
        // Re-frame the modinfo text as the linker does.
        let mut m = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6".to_vec();
        m.extend_from_slice(
            format!(
                "path\t{}\nbuild\tGOARCH=amd64\n",
                inline.path.as_deref().unwrap()
            )
            .as_bytes(),
        );
        m.extend_from_slice(b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2");
        m
    };
    let version = b"go1.16.15";
    let word = |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    bytes[off + 15] = 0; // little-endian, pointers
    word(&mut bytes, off + 16, addr + 32); // -> version string header
    word(&mut bytes, off + 24, addr + 48); // -> modinfo string header
    word(&mut bytes, off + 32, addr + 64);
    word(&mut bytes, off + 40, version.len() as u64);
    word(&mut bytes, off + 48, addr + 80);
    word(&mut bytes, off + 56, modinfo.len() as u64);
    bytes[off + 64..off + 64 + version.len()].copy_from_slice(version);
    bytes[off + 80..off + 80 + modinfo.len()].copy_from_slice(&modinfo);
    let elf = elf::ElfImage::parse(&bytes).unwrap();
    let info = buildinfo::read(&elf).unwrap().unwrap();
    assert_eq!(info.source, buildinfo::VersionSource::BuildInfoPointers);
    assert_eq!(info.raw_version, "go1.16.15");
    assert_eq!(info.path, inline.path);
    assert_eq!(info.setting("GOARCH"), Some("amd64"));
    // And such a binary gets no uprobes, with the reason.
    let plan = plan::plan_bytes(&bytes, target("go116")).unwrap();
    for p in &plan.probes {
        if let Err(Unavailable::Abi(e)) = &p.outcome {
            assert!(
                e.to_string()
                    .contains("go1.16.15 passes arguments on the stack"),
                "{e}"
            );
        } else if !matches!(p.outcome, Err(Unavailable::NotLinked { .. })) {
            panic!("{:?}: {:?}", p.id(), p.outcome);
        }
    }
    assert!(matches!(
        plan.go.call_conv,
        Err(abi::AbiError::StackAbi { .. })
    ));
}

#[test]
fn grpc_version_from_user_agent() {
    for v in [Variant::Full, Variant::Stripped] {
        let Some((_, plan)) = plan_of(Program::Grpc, v) else {
            return;
        };
        let grpc = plan
            .go
            .modules
            .iter()
            .find(|(m, _)| *m == offsets::GRPC_MODULE)
            .unwrap();
        let grpc = grpc.1.as_ref().expect("grpc-go version");
        assert_eq!(grpc.version, "v1.33.3");
        assert_eq!(grpc.evidence, modversion::VersionEvidence::GrpcUserAgent);
        // x/net's version is not recorded in a GOPATH-mode build.
        let xnet = plan
            .go
            .modules
            .iter()
            .find(|(m, _)| *m == offsets::XNET_MODULE)
            .unwrap();
        assert_eq!(xnet.1, None);
    }
}

/// Every function's entry from the stripped binary's function table equals
/// the unstripped binary's symbol table, and both binaries' pclntabs agree.
#[test]
fn function_addresses_identical_with_and_without_symbols() {
    for p in Program::ALL {
        let (Some(full), Some(stripped)) = (
            testbins::bytes(p, Variant::Full),
            testbins::bytes(p, Variant::Stripped),
        ) else {
            return;
        };
        let full_elf = elf::ElfImage::parse(&full).unwrap();
        let stripped_elf = elf::ElfImage::parse(&stripped).unwrap();
        assert!(full_elf.has_symtab() && !stripped_elf.has_symtab());
        let with_syms = functions::Functions::new(&full_elf).unwrap();
        let without = functions::Functions::new(&stripped_elf).unwrap();
        assert_eq!(with_syms.source(), functions::FuncSource::Symtab);
        assert_eq!(without.source(), functions::FuncSource::Pclntab);
        let table = without.pclntab().unwrap();
        assert_eq!(table.version(), pclntab::PclnVersion::Go118);
        // Every function of the table starts where `.symtab` has a function
        // of the same name. Names differ only for generated functions: Go
        // 1.19's table writes `·` where `.symtab` has `.`, and elides array
        // lengths (`type..eq.[...]internal/cpu.option`); `.symtab` suffixes
        // assembly functions with `.abi0`.
        let by_addr: HashMap<u64, Vec<&str>> =
            full_elf.func_symbols().fold(HashMap::new(), |mut m, s| {
                m.entry(s.addr).or_default().push(s.name);
                m
            });
        let mut compared = 0;
        for f in table.funcs() {
            let f = f.unwrap();
            let names = by_addr
                .get(&f.entry)
                .unwrap_or_else(|| panic!("{p:?} {} at {:#x}: no symbol there", f.name, f.entry));
            let same = names.iter().any(|n| {
                let n = n.strip_suffix(".abi0").unwrap_or(n);
                n == f.name || n == f.name.replace('·', ".") || f.name.contains("[...]")
            });
            assert!(
                same,
                "{p:?} {:#x}: table says {}, symbols say {names:?}",
                f.entry, f.name
            );
            compared += 1;
        }
        assert!(compared > 3000, "{p:?}: only {compared} functions");
        for probe in probes::PROBES {
            for name in [Some(probe.function), probe.if_inlined]
                .into_iter()
                .flatten()
            {
                let entry = |l: functions::Lookup| match l {
                    functions::Lookup::Found(f) => Some(f.entry),
                    _ => None,
                };
                let (a, b) = (with_syms.lookup(name), without.lookup(name));
                assert_eq!(entry(a), entry(b), "{p:?} {name}");
                assert_eq!(
                    std::mem::discriminant(&a),
                    std::mem::discriminant(&b),
                    "{p:?} {name}"
                );
            }
        }
        // The unstripped binary's own table says the same.
        let own = with_syms.pclntab().unwrap();
        assert_eq!(own.len(), table.len());
    }
}

#[test]
fn wanted_functions_found_and_plans_identical_when_stripped() {
    let expect_ready: &[(Program, &[ProbeId])] = &[
        (Program::NetHttp, &HTTP_PROBES),
        (Program::Gin, &HTTP_PROBES),
        (
            Program::Grpc,
            &[
                ProbeId::GoroutineNew,
                ProbeId::GrpcServerHeaders,
                ProbeId::GrpcClientHeaders,
                ProbeId::GrpcWriteHeader,
                ProbeId::GrpcClientStream,
            ],
        ),
    ];
    for (p, ids) in expect_ready {
        let (Some((_, full)), Some((_, stripped))) =
            (plan_of(*p, Variant::Full), plan_of(*p, Variant::Stripped))
        else {
            return;
        };
        assert!(full.go.has_dwarf && !stripped.go.has_dwarf);
        for id in *ids {
            let a = ready(&full, *id);
            // Without symbols and DWARF, grpc probes that read x/net
            // structs have no offsets (x/net's version is unknown in a
            // GOPATH build); addresses are still found.
            let needs_xnet = probes::spec(*id).structs.iter().any(|s| {
                offsets::spec(s).unwrap().owner == offsets::Owner::Module(offsets::XNET_MODULE)
            });
            if needs_xnet {
                let e = unavailable(&stripped, *id);
                assert!(
                    matches!(e, Unavailable::Offsets(m) if m.contains("golang.org/x/net")),
                    "{e}"
                );
                continue;
            }
            let b = ready(&stripped, *id);
            assert_eq!(a.function, b.function);
            assert_eq!(a.entry, b.entry, "{p:?} {id:?}");
            assert_eq!(a.returns, b.returns, "{p:?} {id:?}");
            assert_eq!(a.params, b.params);
            for (la, lb) in a.layouts.iter().zip(&b.layouts) {
                assert_eq!(
                    (la.name, la.size, &la.fields),
                    (lb.name, lb.size, &lb.fields)
                );
                assert_eq!(la.source, offsets::LayoutSource::Dwarf);
                assert!(matches!(
                    lb.source,
                    offsets::LayoutSource::Table { go: "go1.19.8", .. }
                ));
            }
        }
        for id in HTTP_PROBES.iter().chain(&GRPC_PROBES) {
            if !ids.contains(id) {
                assert!(
                    matches!(unavailable(&full, *id), Unavailable::NotLinked { .. }),
                    "{p:?} {id:?}"
                );
            }
        }
    }
}

/// Every return site decodes as a RET, at an instruction boundary of its
/// function, and its file offset holds the same bytes as its address.
#[test]
fn return_sites_are_real_rets() {
    for p in Program::ALL {
        for v in variants(p) {
            let Some((bytes, plan)) = plan_of(p, v) else {
                return;
            };
            let elf = elf::ElfImage::parse(&bytes).unwrap();
            assert_eq!(plan.go.pie, v == Variant::Pie);
            let want = if p == Program::Grpc {
                2
            } else {
                HTTP_PROBES.len()
            };
            assert!(plan.ready().count() >= want, "{plan}");
            let funcs = functions::Functions::new(&elf).unwrap();
            for (spec, a) in plan.ready() {
                let functions::Lookup::Found(f) = funcs.lookup(a.function) else {
                    panic!("{}", a.function)
                };
                let code = elf.bytes_at(f.entry, f.end - f.entry).unwrap();
                assert_eq!(a.entry.addr, f.entry);
                assert_eq!(&bytes[a.entry.file_offset as usize..][..16], &code[..16]);
                assert_eq!(
                    a.returns.is_empty(),
                    !spec.returns,
                    "{p:?} {v:?} {:?}",
                    spec.id
                );
                let point = a.entry.aya_point(Some(7));
                assert!(matches!(
                    point.location,
                    aya::programs::uprobe::UProbeAttachLocation::AbsoluteOffset(o) if o == a.entry.file_offset
                ));
                assert_eq!(point.cookie, Some(7));
                for r in &a.returns {
                    assert!(
                        disasm::is_ret_at(code, f.entry, r.addr),
                        "{p:?} {v:?} {}",
                        a.function
                    );
                    assert!(disasm::is_instruction_boundary(code, f.entry, r.addr));
                    assert_eq!(
                        bytes[r.file_offset as usize],
                        code[(r.addr - f.entry) as usize]
                    );
                    assert!(matches!(bytes[r.file_offset as usize], 0xc3 | 0xc2));
                }
            }
        }
    }
}

/// What each wanted function looks like in Go 1.19 (as the report tells).
#[test]
fn go119_function_shapes() {
    let Some((_, nethttp)) = plan_of(Program::NetHttp, Variant::Full) else {
        return;
    };
    let Some((_, grpc)) = plan_of(Program::Grpc, Variant::Full) else {
        return;
    };
    let shapes: &[(&Plan, ProbeId, &str, usize)] = &[
        (
            &nethttp,
            ProbeId::HttpServer,
            "net/http.serverHandler.ServeHTTP",
            2,
        ),
        (&nethttp, ProbeId::HttpClientDo, "net/http.(*Client).do", 9),
        (
            &nethttp,
            ProbeId::HttpClientRoundTrip,
            "net/http.(*Transport).roundTrip",
            15,
        ),
        (&nethttp, ProbeId::GoroutineNew, "runtime.newproc1", 1),
        (
            &grpc,
            ProbeId::GrpcClientStream,
            "google.golang.org/grpc/internal/transport.(*http2Client).NewStream",
            7,
        ),
    ];
    for (plan, id, function, rets) in shapes {
        let a = ready(plan, *id);
        assert_eq!((a.function, a.returns.len()), (*function, *rets), "{id:?}");
    }
    for id in [
        ProbeId::GrpcServerHeaders,
        ProbeId::GrpcClientHeaders,
        ProbeId::GrpcWriteHeader,
    ] {
        assert!(ready(&grpc, id).returns.is_empty());
    }
}

#[test]
fn client_do_is_inlined_and_do_is_probed_instead() {
    for p in [Program::NetHttp, Program::Gin] {
        for v in [Variant::Full, Variant::Stripped] {
            let Some(bytes) = testbins::bytes(p, v) else {
                return;
            };
            let elf = elf::ElfImage::parse(&bytes).unwrap();
            let funcs = functions::Functions::new(&elf).unwrap();
            assert_eq!(
                funcs.lookup("net/http.(*Client).Do"),
                functions::Lookup::Inlined
            );
            assert!(matches!(
                funcs.lookup("net/http.(*Client).do"),
                functions::Lookup::Found(_)
            ));
            assert_eq!(
                funcs.lookup("net/http.(*Client).NoSuchMethod"),
                functions::Lookup::Missing
            );
            let plan = plan::plan_bytes(&bytes, target("x")).unwrap();
            let a = ready(&plan, ProbeId::HttpClientDo);
            assert_eq!(a.function, "net/http.(*Client).do");
            assert!(
                a.note
                    .as_deref()
                    .unwrap()
                    .contains("net/http.(*Client).Do is inlined")
            );
        }
    }
}

/// The fallback table equals the DWARF of freshly built binaries.
#[test]
fn table_matches_dwarf() {
    let xnet = testbins::debian_module_version("golang-golang-x-net-dev");
    let mut seen = std::collections::HashSet::new();
    for p in Program::ALL {
        let Some(bytes) = testbins::bytes(p, Variant::Full) else {
            return;
        };
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        let info = buildinfo::read(&elf).unwrap().unwrap();
        let mut key = offsets::VersionKey {
            go: Some(info.raw_version.clone()),
            modules: HashMap::new(),
        };
        if let Some(v) = modversion::module_version(&elf, &info, offsets::GRPC_MODULE) {
            key.modules.insert(offsets::GRPC_MODULE, v.version);
        }
        if let Some(v) = &xnet {
            key.modules.insert(offsets::XNET_MODULE, v.clone());
        }
        let with_dwarf = offsets::Resolver::new(&elf, info.version.clone(), key.clone()).unwrap();
        assert!(with_dwarf.has_dwarf());
        let stripped = testbins::bytes(p, Variant::Stripped).unwrap();
        let stripped_elf = elf::ElfImage::parse(&stripped).unwrap();
        let table = offsets::Resolver::new(&stripped_elf, info.version.clone(), key).unwrap();
        assert!(!table.has_dwarf());
        for spec in offsets::STRUCTS {
            let Ok(d) = with_dwarf.layout(spec) else {
                continue; // not linked into this program
            };
            let t = table
                .layout(spec)
                .unwrap_or_else(|e| panic!("{p:?} {}: {e}", spec.name));
            assert_eq!(
                (d.size, &d.fields),
                (t.size, &t.fields),
                "{p:?} {}",
                spec.name
            );
            seen.insert(spec.name);
        }
    }
    if !seen.is_empty() {
        assert_eq!(
            seen.len(),
            offsets::STRUCTS.len(),
            "every struct checked: {seen:?}"
        );
    }
}

#[test]
fn unknown_version_is_a_clear_outcome_not_a_guess() {
    let Some(stripped) = testbins::bytes(Program::NetHttp, Variant::Stripped) else {
        return;
    };
    let elf = elf::ElfImage::parse(&stripped).unwrap();
    for go in ["go1.19.7", "go1.22.0"] {
        let key = offsets::VersionKey {
            go: Some(go.into()),
            modules: HashMap::new(),
        };
        let r = offsets::Resolver::new(&elf, buildinfo::GoVersion::parse(go), key).unwrap();
        let e = r
            .layout(offsets::spec(offsets::HTTP_REQUEST).unwrap())
            .unwrap_err();
        assert!(matches!(e, offsets::OffsetsError::UnknownVersion { .. }));
        assert!(e.to_string().contains(go), "{e}");
    }
    // A grpc struct with the right Go but an unknown grpc-go version.
    let key = offsets::VersionKey {
        go: Some("go1.19.8".into()),
        modules: HashMap::from([(offsets::GRPC_MODULE, "v1.34.0".to_string())]),
    };
    let r = offsets::Resolver::new(&elf, buildinfo::GoVersion::parse("go1.19.8"), key).unwrap();
    let e = r
        .layout(offsets::spec(offsets::GRPC_STREAM).unwrap())
        .unwrap_err();
    assert!(
        e.to_string().contains("google.golang.org/grpc v1.34.0"),
        "{e}"
    );
}

#[test]
fn non_go_binaries_are_not_go() {
    for path in ["/bin/ls", "/bin/sh"] {
        let p = std::path::Path::new(path);
        if !p.exists() {
            continue;
        }
        let e = plan::plan_path(p).unwrap_err();
        assert!(matches!(e, PlanError::NotGo { .. }), "{path}: {e}");
        assert!(e.is_not_go());
    }
    let e = plan::plan_bytes(b"#!/bin/sh\necho hi\n", target("script")).unwrap_err();
    assert!(matches!(e, PlanError::NotElf { .. }));
}

#[test]
fn plan_for_a_running_process() {
    let Some(path) = testbins::binary(Program::NetHttp, Variant::Full) else {
        return;
    };
    let mut child = std::process::Command::new(&path)
        .arg("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is up (it prints its address).
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let result = plan::plan_pid(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let plan = result.unwrap();
    assert_eq!(plan.target.pid, Some(child.id()));
    assert_eq!(plan.target.exe, std::fs::canonicalize(&path).unwrap());
    assert_eq!(
        plan.target.attach_path,
        std::path::Path::new(&format!("/proc/{}/root", child.id()))
            .join(plan.target.exe.strip_prefix("/").unwrap())
    );
    for id in HTTP_PROBES {
        ready(&plan, id);
    }
    let by_path = plan::plan_path(&path).unwrap();
    assert_eq!(
        ready(&plan, ProbeId::HttpServer).returns,
        ready(&by_path, ProbeId::HttpServer).returns
    );
}

/// A tiny deterministic generator for the robustness test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Truncated and corrupted Go binaries, and garbage with an ELF header,
/// give errors or degraded plans, never panics.
#[test]
fn truncated_and_garbage_elf_never_panics() {
    let Some(bytes) = testbins::bytes(Program::NetHttp, Variant::Stripped) else {
        return;
    };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let run = |data: &[u8]| {
        let _ = plan::plan_bytes(data, target("fuzz")).map(|p| p.to_string());
    };
    // Every prefix of the headers, then prefixes across the whole file.
    for n in 0..512 {
        run(&bytes[..n]);
    }
    for i in 1..64 {
        run(&bytes[..bytes.len() * i / 64]);
    }
    // Random byte corruption in the ELF/program headers, the build info and
    // the function table, which everything else hangs off.
    let elf = elf::ElfImage::parse(&bytes).unwrap();
    let pcln = elf.section_file_bytes(".gopclntab").unwrap();
    let pcln_off = pcln.as_ptr() as usize - bytes.as_ptr() as usize;
    let bi_addr = elf.section_address(".go.buildinfo").unwrap();
    let bi_off = elf.file_offset(bi_addr).unwrap() as usize;
    for round in 0..150 {
        let mut c = bytes.clone();
        let region = match round % 3 {
            0 => 0..0x300,
            1 => pcln_off..pcln_off + 0x400,
            _ => bi_off..bi_off + 0x100,
        };
        for _ in 0..1 + rng.next() % 8 {
            let at = region.start + (rng.next() as usize) % region.len();
            c[at] = rng.next() as u8;
        }
        run(&c);
    }
    // Garbage after a valid ELF identification.
    for _ in 0..200 {
        let len = 64 + (rng.next() % 4096) as usize;
        let mut g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        g[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        run(&g);
    }
}

/// Parameters of `function` as the compiler describes them in DWARF: name,
/// whether it is a result, and the DWARF registers holding it at the
/// function's first instruction (empty if the location list has no entry
/// there, e.g. an unused parameter).
fn dwarf_params_at_entry(elf: &elf::ElfImage<'_>, function: &str) -> Vec<(String, bool, Vec<u16>)> {
    use gimli::{AttributeValue, EndianSlice, Operation, RunTimeEndian};
    let sections =
        gimli::DwarfSections::load(|id| -> Result<std::borrow::Cow<'_, [u8]>, elf::ElfError> {
            Ok(elf
                .section_data(id.name())?
                .unwrap_or(std::borrow::Cow::Borrowed(&[])))
        })
        .unwrap();
    let dwarf = sections.borrow(|s| EndianSlice::new(s, RunTimeEndian::Little));
    let string = |v: Option<AttributeValue<EndianSlice<'_, RunTimeEndian>>>| match v {
        Some(AttributeValue::String(s)) => Some(String::from_utf8_lossy(s.slice()).into_owned()),
        _ => None,
    };
    let mut units = dwarf.units();
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let mut entries = unit.entries();
        let mut found: Option<(isize, u64)> = None;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_dfs().unwrap() {
            match found {
                None => {
                    if entry.tag() == gimli::DW_TAG_subprogram
                        && string(entry.attr_value(gimli::DW_AT_name)).as_deref() == Some(function)
                    {
                        let Some(AttributeValue::Addr(low)) = entry.attr_value(gimli::DW_AT_low_pc)
                        else {
                            continue;
                        };
                        found = Some((entry.depth(), low));
                    }
                }
                Some((depth, low)) => {
                    if entry.depth() <= depth {
                        return out;
                    }
                    if entry.depth() != depth + 1 || entry.tag() != gimli::DW_TAG_formal_parameter {
                        continue;
                    }
                    let name = string(entry.attr_value(gimli::DW_AT_name)).unwrap_or_default();
                    let result = matches!(
                        entry.attr_value(gimli::DW_AT_variable_parameter),
                        Some(AttributeValue::Flag(true))
                    );
                    let mut regs = Vec::new();
                    if let Some(loc) = entry.attr_value(gimli::DW_AT_location)
                        && let Some(mut list) = dwarf.attr_locations(&unit, loc).unwrap()
                    {
                        while let Some(e) = list.next().unwrap() {
                            if e.range.begin <= low && low < e.range.end {
                                let mut ops = e.data.operations(unit.encoding());
                                while let Some(op) = ops.next().unwrap() {
                                    if let Operation::Register { register } = op {
                                        regs.push(register.0);
                                    }
                                }
                                break; // the first entry covering the entry PC
                            }
                        }
                    }
                    // Go 1.19 describes some two-word parameters at entry
                    // with each piece twice (`reg3 piece8 reg3 piece8 reg2
                    // piece8 reg2 piece8` for an interface in RBX, RCX);
                    // no value has one register for two consecutive words.
                    regs.dedup();
                    out.push((name, result, regs));
                }
            }
        }
        if found.is_some() {
            return out;
        }
    }
    panic!("no DWARF subprogram {function}");
}

/// The registers the plan gives for each parameter at entry are where the
/// compiler's own DWARF says the parameter is at the function's first
/// instruction.
#[test]
fn entry_registers_match_the_compilers_dwarf() {
    let mut checked = 0;
    for p in [Program::NetHttp, Program::Grpc] {
        let Some((bytes, plan)) = plan_of(p, Variant::Full) else {
            return;
        };
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        for (spec, a) in plan.ready() {
            let params = dwarf_params_at_entry(&elf, a.function);
            let inputs: Vec<_> = params.iter().filter(|(_, result, _)| !result).collect();
            assert_eq!(
                inputs.len(),
                a.params.len(),
                "{}: DWARF parameters {params:?}",
                a.function
            );
            for (ours, (name, _, regs)) in a.params.iter().zip(&inputs) {
                // Names agree, except results/receivers the source leaves
                // unnamed.
                if !ours.name.starts_with('~') && !name.starts_with('~') {
                    assert_eq!(ours.name, name, "{}", a.function);
                }
                if regs.is_empty() {
                    continue; // not live at entry (unused)
                }
                let ours: Vec<u16> = ours.regs.iter().map(|r| r.dwarf_number()).collect();
                assert_eq!(&ours, regs, "{} {name} ({:?})", a.function, spec.id);
                checked += 1;
            }
        }
    }
    if checked > 0 {
        assert!(checked >= 12, "only {checked} parameters checked");
    }
}

/// The sweep on every function of a real binary: all decode, and direct
/// jumps out of a function (tail calls) exist only where expected: none in
/// the functions the probes use (checked by the plans above).
#[test]
fn every_function_of_a_real_binary_decodes() {
    let Some(bytes) = testbins::bytes(Program::NetHttp, Variant::Stripped) else {
        return;
    };
    let elf = elf::ElfImage::parse(&bytes).unwrap();
    let table = functions::find_pclntab(&elf).unwrap();
    let (mut decoded, mut with_rets, mut tail, mut bad) = (0, 0, Vec::new(), Vec::new());
    for f in table.funcs() {
        let f = f.unwrap();
        let code = elf.bytes_at(f.entry, f.end - f.entry).unwrap();
        let Ok(e) = disasm::exits(code, f.entry) else {
            // Hand-written assembly that embeds data in its code, like
            // crypto/internal/boring/sig's marker functions.
            bad.push(f.name);
            continue;
        };
        decoded += 1;
        with_rets += usize::from(!e.rets.is_empty());
        if !e.tail_calls.is_empty() {
            tail.push(f.name);
        }
    }
    eprintln!(
        "{decoded} functions decoded, {with_rets} with RETs, {} with tail calls, e.g. {:?}; undecodable: {bad:?}",
        tail.len(),
        &tail[..tail.len().min(8)]
    );
    assert!(decoded > 3000 && with_rets > decoded / 2);
    assert!(
        bad.iter()
            .all(|n| n.starts_with("crypto/internal/boring/sig.")),
        "{bad:?}"
    );
}

/// A compiler-generated wrapper for a promoted method ends with a JMP to
/// the method: probing its returns is refused with the reason; its entry
/// alone is fine.
#[test]
fn tail_calls_are_reported_not_probed() {
    let Some(bytes) = testbins::bytes(Program::NetHttp, Variant::Full) else {
        return;
    };
    let elf = elf::ElfImage::parse(&bytes).unwrap();
    let funcs = functions::Functions::new(&elf).unwrap();
    let info = buildinfo::read(&elf).unwrap().unwrap();
    let resolver = offsets::Resolver::new(&elf, info.version.clone(), Default::default()).unwrap();
    let conv = abi::call_conv(info.version.as_ref(), &info.raw_version, elf.arch());
    let spec = |returns| -> &'static probes::ProbeSpec {
        Box::leak(Box::new(probes::ProbeSpec {
            id: ProbeId::HttpServer,
            function: "context.(*timerCtx).Done",
            if_inlined: None,
            returns,
            module: None,
            structs: &[],
            signature: abi::Signature {
                params: &[],
                results: &[],
            },
        }))
    };
    let e = plan::plan_probe(spec(true), &elf, &funcs, &resolver, &conv).unwrap_err();
    let Unavailable::TailCalls { first, count, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*count, 1);
    let (target, _) = funcs.containing(first.target).unwrap();
    assert_eq!(target, "context.(*cancelCtx).Done");
    assert!(e.to_string().contains("tail call"), "{e}");
    assert!(plan::plan_probe(spec(false), &elf, &funcs, &resolver, &conv).is_ok());
}

/// Without section headers the function table is found by its header, in
/// a plain and in a position-independent binary (where it is in RELRO).
#[test]
fn function_table_found_without_section_headers() {
    for v in [Variant::Stripped, Variant::Pie] {
        let Some(mut bytes) = testbins::bytes(Program::NetHttp, v) else {
            return;
        };
        let (want, pcln_off) = {
            let elf = elf::ElfImage::parse(&bytes).unwrap();
            let t = functions::find_pclntab(&elf).unwrap();
            let off = t.data().as_ptr() as usize - bytes.as_ptr() as usize;
            (t.len(), off)
        };
        // Break the section name lookup: rename the section in the string table.
        let name = if v == Variant::Pie {
            &b".data.rel.ro.gopclntab"[..]
        } else {
            &b".gopclntab"[..]
        };
        let at = memchr::memmem::find(&bytes, &[name, b"\0"].concat()).unwrap();
        bytes[at + name.len() - 4..at + name.len()].copy_from_slice(b"XXXX");
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        let t = functions::find_pclntab(&elf).unwrap();
        assert_eq!(t.len(), want, "{v:?}");
        assert_eq!(
            t.data().as_ptr() as usize - bytes.as_ptr() as usize,
            pcln_off
        );
    }
}

#[test]
#[ignore = "prints plans and timings for a report"]
fn print_plans() {
    for p in Program::ALL {
        for v in variants(p) {
            let Some(bytes) = testbins::bytes(p, v) else {
                return;
            };
            let t = std::time::Instant::now();
            let plan = plan::plan_bytes(&bytes, target(&format!("{p:?}-{v:?}"))).unwrap();
            println!(
                "{plan}  ({} bytes, planned in {:?})",
                bytes.len(),
                t.elapsed()
            );
            if v == Variant::Full && p == Program::Grpc {
                let elf = elf::ElfImage::parse(&bytes).unwrap();
                let funcs = functions::Functions::new(&elf).unwrap();
                for name in [
                    "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders",
                    "google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader",
                ] {
                    let functions::Lookup::Found(f) = funcs.lookup(name) else {
                        panic!()
                    };
                    let e = disasm::exits(elf.bytes_at(f.entry, f.end - f.entry).unwrap(), f.entry)
                        .unwrap();
                    println!(
                        "{name}: {:#x}, {} bytes, {} RETs, {} tail calls",
                        f.entry,
                        f.end - f.entry,
                        e.rets.len(),
                        e.tail_calls.len()
                    );
                }
            }
        }
    }
}

/// A Go binary whose build info is unreadable is still Go (its function
/// table says so), of an unknown version: no probes, with the reason.
#[test]
fn go_without_build_info_is_go_of_unknown_version() {
    let Some(mut bytes) = testbins::bytes(Program::NetHttp, Variant::Stripped) else {
        return;
    };
    let at = memchr::memmem::find(&bytes, b"\xff Go buildinf:").unwrap();
    bytes[at + 1] = b'X';
    let plan = plan::plan_bytes(&bytes, target("no-buildinfo")).unwrap();
    assert_eq!(plan.go.version_source, buildinfo::VersionSource::Unknown);
    assert!(matches!(
        plan.go.call_conv,
        Err(abi::AbiError::UnknownVersion { .. })
    ));
    let e = unavailable(&plan, ProbeId::HttpServer);
    assert!(
        e.to_string().contains("cannot tell the calling convention"),
        "{e}"
    );
}

#[test]
fn go_sections_tell_go_from_other_executables_cheaply() {
    // Every variant of a Go program (stripped and PIE too) has them.
    for p in [Program::NetHttp, Program::Grpc] {
        for v in variants(p) {
            let Some(path) = testbins::binary(p, v) else {
                return;
            };
            assert_eq!(plan::has_go_sections(&path), Some(true), "{p:?} {v:?}");
        }
    }
    // A C program and this test binary (Rust) don't.
    for exe in ["/bin/ls", "/usr/bin/curl"] {
        assert_eq!(plan::has_go_sections(exe.as_ref()), Some(false), "{exe}");
    }
    let me = std::env::current_exe().unwrap();
    assert_eq!(plan::has_go_sections(&me), Some(false));
    // Not ELF: the full analysis decides.
    assert_eq!(plan::has_go_sections("/etc/hostname".as_ref()), None);
    assert!(plan::plan_path("/bin/ls".as_ref()).unwrap_err().is_not_go());
}
