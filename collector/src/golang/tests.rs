//! Tests on real Go binaries (built by `testbins`).

use super::testbins::{self, Program, Variant};
use super::*;

#[test]
#[ignore]
fn explore() {
    for p in Program::ALL {
        let Some(bytes) = testbins::bytes(p, Variant::Full) else { return };
        let elf = elf::ElfImage::parse(&bytes).unwrap();
        let names: Vec<&str> = offsets::STRUCTS.iter().map(|s| s.name).collect();
        let d = dwarf::struct_layouts(&elf, &names).unwrap();
        for s in offsets::STRUCTS {
            if let Some(l) = d.get(s.name) {
                println!("{p:?} {} size {}", s.name, l.size);
                for f in s.fields {
                    println!("    {} {:?}", f.name, l.member(f.name));
                }
            }
        }
        let plan = plan::plan_bytes(&bytes, plan::Target { attach_path: "x".into(), pid: None, exe: format!("{p:?}").into() }).unwrap();
        println!("{plan}");
    }
}
