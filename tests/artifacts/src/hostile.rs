//! Hostile plugin files that are easier to generate than to build: a
//! component whose one function is huge (costly to compile), and one whose
//! memory starts larger than any sensible cap. Each is a component wrapping
//! one core module: a host compiles it, and inspects it, before it checks
//! the world, so neither needs the `handler` world to test those stages.

use wasm_encoder::{
    CodeSection, Component, ExportKind, ExportSection, Function, FunctionSection, Instruction,
    MemorySection, MemoryType, Module, ModuleSection, TypeSection, ValType,
};

/// A component with one straight-line function of about `body_bytes` bytes
/// over many locals: compiling it costs time and memory that grow with its
/// size (register allocation over thousands of live values), as a plugin
/// author's generated code might, or an attacker's.
pub fn huge_function(body_bytes: usize) -> Vec<u8> {
    const LOCALS: u32 = 2_000;
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut body = Function::new([(LOCALS, ValType::I32)]);
    // Each step reads two locals far apart and writes a third: every local
    // stays live across the whole body.
    let mut i: u32 = 0;
    let mut written = 0;
    while written < body_bytes {
        let a = 1 + (i.wrapping_mul(7919) % LOCALS);
        let b = 1 + (i.wrapping_mul(104_729) % LOCALS);
        let c = 1 + (i.wrapping_mul(15_485_863) % LOCALS);
        body.instruction(&Instruction::LocalGet(a));
        body.instruction(&Instruction::LocalGet(b));
        body.instruction(&Instruction::I32Add);
        body.instruction(&Instruction::LocalGet(0));
        body.instruction(&Instruction::I32Xor);
        body.instruction(&Instruction::LocalSet(c));
        written += 12;
        i += 1;
    }
    // Everything feeds the result, so nothing is dead code.
    body.instruction(&Instruction::LocalGet(0));
    for local in 1..=LOCALS {
        body.instruction(&Instruction::LocalGet(local));
        body.instruction(&Instruction::I32Add);
    }
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut exports = ExportSection::new();
    exports.export("f", ExportKind::Func, 0);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&exports)
        .section(&code);
    wrap(&module)
}

/// A component whose one core module declares a memory of at least
/// `minimum_pages` 64 KiB pages.
pub fn memory_minimum(minimum_pages: u64) -> Vec<u8> {
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: minimum_pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut module = Module::new();
    module.section(&memories);
    wrap(&module)
}

fn wrap(module: &Module) -> Vec<u8> {
    let mut component = Component::new();
    component.section(&ModuleSection(module));
    component.finish()
}
